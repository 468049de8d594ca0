"""shmbus for Python: ``multiprocessing``'s Pipe, Queue, JoinableQueue, Value
and Array, and topics (fan-out), over a shmbus bus (shared memory served by ``shmbusd``), between any
processes of the machine, related or not.

    import shmbus
    bus = shmbus.connect()                   # $SHMBUS_BUS, else "shmbus"
    q = bus.Queue("jobs", maxsize=1024, item_size=4096)
    q.put({"any": "object"}); q.get()
    reader, writer = bus.Pipe("ticks")
    v = bus.Value("hits", "q")
    with v.get_lock():
        v.value += 1
    a = bus.Array("last", "d", 16)
    t = bus.Topic("prices")                  # publish once, every subscriber receives
    sub = t.subscribe()
    t.publish(("EURUSD", 1.0842)); sub.recv()

The classes take the channel's name first and ``bus=`` last, so that
``shmbus.Queue("jobs")`` works on the default bus. Every handle pickles by
name (bus and channel), so it can be a ``multiprocessing.Process`` argument
under any start method, or be opened by name from an unrelated program.
"""

import os as _os
import pickle as _pickle

from . import _shmbus
from ._errors import (
    BrokenPipe,
    Busy,
    BusClosed,
    Corrupt,
    DaemonNotRunning,
    Empty,
    EndOfPipe,
    Error,
    Full,
    InvalidArgument,
    Lagged,
    Mismatch,
    NotFound,
    PermissionDenied,
    TaskDoneError,
    Timeout,
    TooLarge,
    TooManySubscribers,
)

__all__ = [
    "Array",
    "BrokenPipe",
    "Bus",
    "Busy",
    "BusClosed",
    "Corrupt",
    "DaemonNotRunning",
    "Empty",
    "EndOfPipe",
    "Error",
    "Full",
    "InvalidArgument",
    "JoinableQueue",
    "Lagged",
    "Mismatch",
    "NotFound",
    "PermissionDenied",
    "Pipe",
    "PipeReader",
    "PipeWriter",
    "Queue",
    "Subscriber",
    "TaskDoneError",
    "Timeout",
    "TooLarge",
    "TooManySubscribers",
    "Topic",
    "Value",
    "connect",
    "default_bus_name",
]

_PROTOCOL = 5


def _dumps(obj):
    return _pickle.dumps(obj, protocol=_PROTOCOL)


_loads = _pickle.loads


def default_bus_name():
    """The bus used when none is named: ``$SHMBUS_BUS``, else ``"shmbus"``."""
    return _shmbus.default_bus_name()


def _slots(maxsize):
    """``maxsize`` rounded up to the power of two a queue's slot count must be
    (0: the bus default)."""
    if maxsize <= 0:
        return 0
    return 1 << (int(maxsize) - 1).bit_length()


def _typecode(typecode_or_type):
    """A ``multiprocessing`` typecode (``"d"``), or a ctypes type's."""
    return getattr(typecode_or_type, "_type_", typecode_or_type)


class Queue(_shmbus.RawQueue):
    """A named multi-producer multi-consumer queue, as ``multiprocessing.Queue``.

    ``maxsize`` is rounded up to a power of two (0: the bus default, 1024);
    ``item_size`` bounds one pickled item in bytes (0: the bus default, 256).
    An existing queue is opened whatever its parameters.
    """

    def __new__(cls, name, maxsize=0, item_size=0, *, bus=None, _create=True):
        return super().__new__(cls, bus, name, _slots(maxsize), item_size, _create)

    def put(self, obj, block=True, timeout=None):
        """Puts ``obj`` (pickled); waits for room if ``block`` (at most
        ``timeout`` seconds), else raises ``queue.Full`` (``shmbus.Full``)."""
        self.put_bytes(_dumps(obj), block, timeout)

    def get(self, block=True, timeout=None):
        """Takes one item (unpickled); waits if ``block`` (at most ``timeout``
        seconds), else raises ``queue.Empty`` (``shmbus.Empty``)."""
        return _loads(self.get_bytes(block, timeout))

    def put_nowait(self, obj):
        """``put(obj, False)``."""
        self.put(obj, False)

    def get_nowait(self):
        """``get(False)``."""
        return self.get(False)

    def close(self):
        """Nothing to do (no feeder thread); kept for ``multiprocessing``'s API."""

    def join_thread(self):
        """Nothing to do (no feeder thread); kept for ``multiprocessing``'s API."""

    def cancel_join_thread(self):
        """Nothing to do (no feeder thread); kept for ``multiprocessing``'s API."""

    def __reduce__(self):
        return (_reopen_queue, (type(self), self.bus, self.name))

    def __repr__(self):
        return f"<shmbus.{type(self).__name__} {self.name!r} on bus {self.bus!r}>"


class JoinableQueue(Queue):
    """A :class:`Queue` with ``task_done()`` and ``join()``, as
    ``multiprocessing.JoinableQueue`` (every shmbus queue counts tasks)."""


def _reopen_queue(cls, bus, name):
    return cls(name, bus=bus, _create=False)


class PipeReader(_shmbus.RawReader):
    """The reading end of a named pipe (a ``multiprocessing`` ``Connection``
    with ``readable`` true). Claimed on the bus when first used."""

    readable = True
    writable = False

    def __new__(cls, name, *, bus=None, capacity=None, _create=False, _mark=None):
        return super().__new__(cls, bus, name, capacity, _create, _mark)

    def recv(self):
        """Receives one object (unpickled); ``EOFError`` at end of pipe."""
        return _loads(self.recv_bytes())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        return (_reopen_reader, (type(self), self.bus, self.name, self.mark))

    def __repr__(self):
        return f"<shmbus.PipeReader {self.name!r} on bus {self.bus!r}>"


class PipeWriter(_shmbus.RawWriter):
    """The writing end of a named pipe (a ``multiprocessing`` ``Connection``
    with ``writable`` true). Claimed on the bus when first used."""

    readable = False
    writable = True

    def __new__(cls, name, *, bus=None, capacity=None, _create=False):
        return super().__new__(cls, bus, name, capacity, _create)

    def send(self, obj):
        """Sends ``obj`` (pickled); ``BrokenPipeError`` if the reader is gone."""
        self.send_bytes(_dumps(obj))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        return (_reopen_end, (type(self), self.bus, self.name))

    def __repr__(self):
        return f"<shmbus.PipeWriter {self.name!r} on bus {self.bus!r}>"


def _reopen_end(cls, bus, name):
    return cls(name, bus=bus)


def _reopen_reader(cls, bus, name, mark):
    return cls(name, bus=bus, _mark=mark)


def Pipe(name, duplex=False, *, bus=None, capacity=None):
    """Opens (creating if missing) pipe ``name`` and returns its two ends,
    ``(reader, writer)``, as ``multiprocessing.Pipe(duplex=False)``.

    Each end is claimed when first used, so that both can be made here and
    one handed to another process. As with ``multiprocessing``, the reader
    sees ``EOFError`` once the writer has closed (or died) and everything
    is read, even if the writer sent and closed before the reader was first
    used. ``capacity`` (bytes) applies when the pipe is created."""
    if duplex:
        raise ValueError("shmbus pipes are one-way: use Pipe(name, duplex=False)")
    r = PipeReader(name, bus=bus, capacity=capacity, _create=True)
    return r, PipeWriter(name, bus=r.bus)


class _Lock:
    """The writer lock of a value or array (``get_lock()``)."""

    def __init__(self, shared):
        self._shared = shared

    def acquire(self, block=True, timeout=None):
        """Takes the lock (waiting for another writer); always True."""
        return self._shared.lock_acquire()

    def release(self):
        """Publishes what was written while held and releases the lock."""
        self._shared.lock_release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class _Shared(_shmbus.RawShared):
    """What values and arrays share."""

    def get_lock(self):
        """The writer lock, for atomic read-modify-write across processes::

            with v.get_lock():
                v.value += 1

        Readers never wait for it: they see the contents before the block or
        after it, never in between. Not re-entrant."""
        return _Lock(self)

    def get_obj(self):
        """This handle (``multiprocessing``'s synchronized wrapper's object)."""
        return self

    def wait_changed(self, timeout=None):
        """Waits until a write newer than the last one this handle waited
        for (or than its opening); True, or False after ``timeout`` seconds."""
        seen = self.__dict__.get("_seen", None)
        if seen is None:
            seen = self.__dict__["_opened"]
        v = self.wait_version(seen, timeout)
        if v is None:
            return False
        self._seen = v
        return True

    def _reopen_args(self):
        raise NotImplementedError


class Value(_Shared):
    """A named typed value, as ``multiprocessing.Value``: ``.value`` reads
    without a lock and is never torn; ``get_lock()`` for read-modify-write.

    ``typecode_or_type`` is a ``multiprocessing``/``array`` typecode (``b B
    h H i I l L q Q f d``) or a ctypes type. An initial value is written only
    if the value has never been written."""

    def __new__(cls, name, typecode_or_type, *args, lock=True, bus=None):
        self = super().__new__(cls, bus, name, _typecode(typecode_or_type), None)
        self._opened = self.version
        if args and self._opened == 0:
            self.setitem(0, args[0])
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __reduce__(self):
        return (_reopen_value, (type(self), self.bus, self.name, self.typecode))

    def __repr__(self):
        return f"<shmbus.Value {self.name!r} {self.typecode!r} on bus {self.bus!r}>"


def _reopen_value(cls, bus, name, typecode):
    return cls(name, typecode, bus=bus)


class Array(_Shared):
    """A named fixed-length typed array, as ``multiprocessing.Array``:
    ``a[i]``, ``a[2:5]``, ``a[:] = ...``, ``len(a)``; every read of a slice
    is one consistent snapshot, every slice assignment one publication.

    ``size_or_initializer`` is the length, or a sequence that gives the
    length and the first contents (written only if the array has never been
    written)."""

    def __new__(cls, name, typecode_or_type, size_or_initializer, *, lock=True, bus=None):
        if isinstance(size_or_initializer, int):
            size, init = size_or_initializer, None
        else:
            init = list(size_or_initializer)
            size = len(init)
        self = super().__new__(cls, bus, name, _typecode(typecode_or_type), size)
        self._opened = self.version
        if init is not None and self._opened == 0:
            self.assign(list(range(size)), init)
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __iter__(self):
        return iter(self.read())

    def __reduce__(self):
        return (_reopen_array, (type(self), self.bus, self.name, self.typecode, len(self)))

    def __repr__(self):
        return f"<shmbus.Array {self.name!r} {self.typecode!r} [{len(self)}] on bus {self.bus!r}>"


def _reopen_array(cls, bus, name, typecode, size):
    return cls(name, typecode, size, bus=bus)


class Topic(_shmbus.RawTopic):
    """A named topic: publish once, every subscriber receives every message
    published after it joined, whole, once, in one order for all.

    Created if missing with ``slots`` slots (a power of two; 0: the bus
    default, 1024) of ``slot_size`` bytes (the largest pickled message; 0:
    256), for up to ``max_subscribers`` subscribers (0: 64). Lossless by
    default: a publisher waits while the slowest subscriber is a ring
    behind. ``lossy=True``: publishers never wait, and a subscriber that
    falls a ring behind gets :class:`Lagged`. An existing topic is opened
    whatever its parameters unless some are given (then they must match).
    Pickles by name."""

    def __new__(cls, name, *, slots=0, slot_size=0, lossy=None, max_subscribers=0, bus=None, _create=True):
        return super().__new__(cls, bus, name, slots, slot_size, lossy, max_subscribers, _create)

    def publish(self, obj, block=True, timeout=None):
        """Publishes ``obj`` (pickled). On a lossless topic whose slowest
        subscriber is a ring behind, waits if ``block`` (at most ``timeout``
        seconds), else raises ``queue.Full`` (``shmbus.Full``)."""
        self.publish_bytes(_dumps(obj), block, timeout)

    def subscribe(self, history=0):
        """Joins the topic: a :class:`Subscriber` that receives every message
        published from now on, after up to the last ``history`` messages
        still in the ring. Raises :class:`TooManySubscribers` when full."""
        return Subscriber(self, history)

    def __reduce__(self):
        return (_reopen_topic, (type(self), self.bus, self.name))

    def __repr__(self):
        return f"<shmbus.Topic {self.name!r} on bus {self.bus!r}>"


def _reopen_topic(cls, bus, name):
    return cls(name, bus=bus, _create=False)


class Subscriber(_shmbus.RawSubscriber):
    """A place among a :class:`Topic`'s subscribers (``topic.subscribe()``).
    Its position is this process's own: it does not pickle, and a forked
    child subscribes again. ``close()`` (or ``with``) leaves the topic."""

    def __new__(cls, topic, history=0):
        return super().__new__(cls, topic, history)

    def recv(self, block=True, timeout=None):
        """Receives the next message (unpickled); waits if ``block`` (at most
        ``timeout`` seconds), else raises ``queue.Empty`` (``shmbus.Empty``).
        On a lossy topic, raises :class:`Lagged` once when messages were
        overwritten before this subscriber read them (``.missed`` says how
        many); the next receive goes on with the oldest still there."""
        return _loads(self.recv_bytes(block, timeout))

    def recv_nowait(self):
        """``recv(False)``."""
        return self.recv(False)

    def __iter__(self):
        while True:
            yield self.recv()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        raise TypeError("a topic subscriber does not pickle: pass the Topic and subscribe there")

    def __repr__(self):
        return f"<shmbus.Subscriber of {self.name!r} on bus {self.bus!r}>"


class Bus:
    """A connection to one bus; opens its channels. Pickles by name."""

    def __init__(self, name=None):
        self.name = _shmbus.connect(name)

    def Queue(self, name, maxsize=0, item_size=0):
        """:class:`Queue` ``name`` on this bus."""
        return Queue(name, maxsize, item_size, bus=self.name)

    def JoinableQueue(self, name, maxsize=0, item_size=0):
        """:class:`JoinableQueue` ``name`` on this bus."""
        return JoinableQueue(name, maxsize, item_size, bus=self.name)

    def Pipe(self, name, duplex=False, *, capacity=None):
        """:func:`Pipe` ``name`` on this bus: ``(reader, writer)``."""
        return Pipe(name, duplex, bus=self.name, capacity=capacity)

    def Value(self, name, typecode_or_type, *args, lock=True):
        """:class:`Value` ``name`` on this bus."""
        return Value(name, typecode_or_type, *args, lock=lock, bus=self.name)

    def Array(self, name, typecode_or_type, size_or_initializer, *, lock=True):
        """:class:`Array` ``name`` on this bus."""
        return Array(name, typecode_or_type, size_or_initializer, lock=lock, bus=self.name)

    def Topic(self, name, *, slots=0, slot_size=0, lossy=None, max_subscribers=0):
        """:class:`Topic` ``name`` on this bus."""
        return Topic(
            name, slots=slots, slot_size=slot_size, lossy=lossy, max_subscribers=max_subscribers, bus=self.name
        )

    def __reduce__(self):
        return (Bus, (self.name,))

    def __repr__(self):
        return f"<shmbus.Bus {self.name!r}>"


def connect(name=None):
    """Connects to bus ``name`` (``$SHMBUS_BUS``, else ``"shmbus"``); raises
    ``shmbus.DaemonNotRunning`` if no ``shmbusd`` serves it."""
    return Bus(name)


del _os
