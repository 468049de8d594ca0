"""Type stubs of the shmbus package (see __init__.py for the docs)."""

import queue as _queue
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Type, Union, overload

Number = Union[int, float]
Buffer = Union[bytes, bytearray, memoryview]

class Error(Exception):
    """Base of every shmbus error; the message is the client library's."""

class BusClosed(Error, ConnectionError):
    """The daemon stopped, restarted or was killed: this connection is over."""

class DaemonNotRunning(Error, ConnectionRefusedError):
    """No shmbusd serves the bus."""

class PermissionDenied(Error, PermissionError):
    """The daemon or the channel's owner refused this user."""

class Full(Error, _queue.Full):
    """No room in the queue."""

class Empty(Error, _queue.Empty):
    """Nothing in the queue."""

class Timeout(Error, TimeoutError):
    """A call with a timeout ran out of time."""

class EndOfPipe(Error, EOFError):
    """The pipe's writer closed or died and every message was read."""

class BrokenPipe(Error, BrokenPipeError):
    """The pipe's reader closed or died."""

class TaskDoneError(Error, ValueError):
    """task_done() called more times than items were put."""

class TooLarge(Error, ValueError):
    """Item or message larger than the channel allows."""

class InvalidArgument(Error, ValueError):
    """Bad bus or channel name, or bad channel parameters."""

class Mismatch(Error, ValueError):
    """The channel exists with another kind, element type, length or parameters."""

class Busy(Error):
    """The pipe end is held by another process."""

class NotFound(Error, LookupError):
    """No channel of that name."""

class Corrupt(Error):
    """The channel's shared state is inconsistent."""

class Lagged(Error):
    """A lossy topic's subscriber fell a ring behind: `missed` messages were overwritten."""

    missed: int
    def __init__(self, message: str, missed: int = 0) -> None: ...

class TooManySubscribers(Error):
    """The topic already has its largest number of subscribers."""

def default_bus_name() -> str:
    """The bus used when none is named: $SHMBUS_BUS, else "shmbus"."""

def connect(name: Optional[str] = None) -> Bus:
    """Connects to bus `name` ($SHMBUS_BUS, else "shmbus")."""

class Queue:
    """A named multi-producer multi-consumer queue, as multiprocessing.Queue."""

    bus: str
    name: str
    maxsize: int
    item_size: int
    def __init__(
        self, name: str, maxsize: int = 0, item_size: int = 0, *, bus: Optional[str] = None
    ) -> None: ...
    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Puts obj (pickled); waits for room if block, else raises queue.Full."""
    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Takes one item (unpickled); waits if block, else raises queue.Empty."""
    def put_nowait(self, obj: Any) -> None:
        """put(obj, False)."""
    def get_nowait(self) -> Any:
        """get(False)."""
    def put_bytes(self, data: Buffer, block: bool = True, timeout: Optional[float] = None) -> None:
        """Puts data as one item, without pickling."""
    def get_bytes(self, block: bool = True, timeout: Optional[float] = None) -> bytes:
        """Takes one item as bytes, without unpickling."""
    def qsize(self) -> int:
        """Items in the queue now."""
    def empty(self) -> bool:
        """True if the queue holds no item now."""
    def full(self) -> bool:
        """True if every slot is taken now."""
    def unfinished(self) -> int:
        """Items put and not yet marked done."""
    def task_done(self) -> None:
        """Marks one item taken earlier as processed (ValueError if too often)."""
    def join(self, timeout: Optional[float] = None) -> None:
        """Waits until every item put was marked done (TimeoutError after timeout)."""
    def close(self) -> None:
        """Nothing to do; kept for multiprocessing's API."""
    def join_thread(self) -> None:
        """Nothing to do; kept for multiprocessing's API."""
    def cancel_join_thread(self) -> None:
        """Nothing to do; kept for multiprocessing's API."""

class JoinableQueue(Queue):
    """A Queue with task_done() and join(), as multiprocessing.JoinableQueue."""

class PipeReader:
    """The reading end of a named pipe; claimed when first used."""

    bus: str
    name: str
    mark: Optional[int]
    """The writers' mark when made by Pipe() (end of file counts from it)."""
    readable: bool
    writable: bool
    closed: bool
    def __init__(self, name: str, *, bus: Optional[str] = None, capacity: Optional[int] = None) -> None: ...
    def recv(self) -> Any:
        """Receives one object (unpickled); EOFError at end of pipe."""
    def recv_bytes(self, maxlength: Optional[int] = None, timeout: Optional[float] = None) -> bytes:
        """Receives one message as bytes; EOFError at end of pipe."""
    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        """True if a message (or the end) is ready; does not consume it."""
    def close(self) -> None:
        """Gives the end up."""
    def __enter__(self) -> PipeReader: ...
    def __exit__(self, *exc: object) -> None: ...

class PipeWriter:
    """The writing end of a named pipe; claimed when first used."""

    bus: str
    name: str
    readable: bool
    writable: bool
    closed: bool
    def __init__(self, name: str, *, bus: Optional[str] = None, capacity: Optional[int] = None) -> None: ...
    def send(self, obj: Any) -> None:
        """Sends obj (pickled); BrokenPipeError if the reader is gone."""
    def send_bytes(self, buf: Buffer, offset: int = 0, size: Optional[int] = None) -> None:
        """Sends buf[offset:offset+size] as one message."""
    def close(self) -> None:
        """Gives the end up: the reader sees EOFError after the last message."""
    def __enter__(self) -> PipeWriter: ...
    def __exit__(self, *exc: object) -> None: ...

def Pipe(
    name: str, duplex: bool = False, *, bus: Optional[str] = None, capacity: Optional[int] = None
) -> Tuple[PipeReader, PipeWriter]:
    """Opens pipe `name`: (reader, writer), as multiprocessing.Pipe(duplex=False)."""

class _Lock:
    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the writer lock."""
    def release(self) -> None:
        """Publishes what was written while held and releases the lock."""
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc: object) -> None: ...

class Value:
    """A named typed value, as multiprocessing.Value."""

    bus: str
    name: str
    typecode: str
    value: Number
    version: int
    def __init__(
        self, name: str, typecode_or_type: Union[str, type], *args: Number, lock: bool = True, bus: Optional[str] = None
    ) -> None: ...
    def get_lock(self) -> _Lock:
        """The writer lock, for atomic read-modify-write across processes."""
    def get_obj(self) -> Value:
        """This handle."""
    def fetch_add(self, delta: Number, i: int = 0) -> Number:
        """Adds delta atomically; returns the value before."""
    def wait_changed(self, timeout: Optional[float] = None) -> bool:
        """Waits for a write newer than the last one seen; False on timeout."""
    def wait_version(self, since: int, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until the version differs from since; the new version, or None on timeout."""

class Array:
    """A named fixed-length typed array, as multiprocessing.Array."""

    bus: str
    name: str
    typecode: str
    version: int
    def __init__(
        self,
        name: str,
        typecode_or_type: Union[str, type],
        size_or_initializer: Union[int, Sequence[Number]],
        *,
        lock: bool = True,
        bus: Optional[str] = None,
    ) -> None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, i: int) -> Number: ...
    @overload
    def __getitem__(self, i: slice) -> List[Number]: ...
    @overload
    def __setitem__(self, i: int, x: Number) -> None: ...
    @overload
    def __setitem__(self, i: slice, x: Sequence[Number]) -> None: ...
    def __iter__(self) -> Iterator[Number]: ...
    def read(self) -> List[Number]:
        """Every element, from one consistent snapshot."""
    def get_lock(self) -> _Lock:
        """The writer lock, for atomic read-modify-write across processes."""
    def get_obj(self) -> Array:
        """This handle."""
    def fetch_add(self, delta: Number, i: int = 0) -> Number:
        """Adds delta to element i atomically; returns the element before."""
    def wait_changed(self, timeout: Optional[float] = None) -> bool:
        """Waits for a write newer than the last one seen; False on timeout."""
    def wait_version(self, since: int, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until the version differs from since."""

class Topic:
    """A named topic: publish once, every subscriber receives."""

    bus: str
    name: str
    slots: int
    slot_size: int
    lossy: bool
    max_subscribers: int
    def __init__(
        self,
        name: str,
        *,
        slots: int = 0,
        slot_size: int = 0,
        lossy: Optional[bool] = None,
        max_subscribers: int = 0,
        bus: Optional[str] = None,
    ) -> None: ...
    def publish(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Publishes obj (pickled); a lossless topic waits for room if block, else raises queue.Full."""
    def publish_bytes(self, data: Buffer, block: bool = True, timeout: Optional[float] = None) -> None:
        """Publishes data as one message, without pickling."""
    def subscribe(self, history: int = 0) -> Subscriber:
        """Joins the topic, after up to the last `history` messages still in the ring."""

class Subscriber:
    """A place among a topic's subscribers; this process's own (does not pickle)."""

    bus: str
    name: str
    closed: bool
    def __init__(self, topic: Topic, history: int = 0) -> None: ...
    def recv(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Receives the next message (unpickled); queue.Empty if none, Lagged (lossy) after a loss."""
    def recv_nowait(self) -> Any:
        """recv(False)."""
    def recv_bytes(self, block: bool = True, timeout: Optional[float] = None) -> bytes:
        """Receives the next message as bytes, without unpickling."""
    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        """True if a receive would not wait; does not consume the message."""
    def pending(self) -> int:
        """Approximately how many published messages are not read yet."""
    def close(self) -> None:
        """Leaves the topic."""
    def __iter__(self) -> Iterator[Any]: ...
    def __enter__(self) -> Subscriber: ...
    def __exit__(self, *exc: object) -> None: ...

class Bus:
    """A connection to one bus; opens its channels."""

    name: str
    def __init__(self, name: Optional[str] = None) -> None: ...
    def Queue(self, name: str, maxsize: int = 0, item_size: int = 0) -> Queue: ...
    def JoinableQueue(self, name: str, maxsize: int = 0, item_size: int = 0) -> JoinableQueue: ...
    def Pipe(self, name: str, duplex: bool = False, *, capacity: Optional[int] = None) -> Tuple[PipeReader, PipeWriter]: ...
    def Value(self, name: str, typecode_or_type: Union[str, type], *args: Number, lock: bool = True) -> Value: ...
    def Array(
        self, name: str, typecode_or_type: Union[str, type], size_or_initializer: Union[int, Sequence[Number]], *, lock: bool = True
    ) -> Array: ...
    def Topic(
        self, name: str, *, slots: int = 0, slot_size: int = 0, lossy: Optional[bool] = None, max_subscribers: int = 0
    ) -> Topic: ...
