"""The exceptions of the shmbus package.

Each subclasses ``shmbus.Error`` and, where ``multiprocessing`` raises a
builtin or ``queue`` exception for the same situation, that one too, so that
``except queue.Empty`` or ``except EOFError`` keep working.
"""

import queue as _queue


class Error(Exception):
    """Base of every shmbus error; the message is the client library's."""


class BusClosed(Error, ConnectionError):
    """The daemon stopped, restarted or was killed: this connection is over."""


class DaemonNotRunning(Error, ConnectionRefusedError):
    """No shmbusd serves the bus (start one: ``shmbusd --name BUS``)."""


class PermissionDenied(Error, PermissionError):
    """The daemon or the channel's owner refused this user."""


class Full(Error, _queue.Full):
    """No room in the queue (``put_nowait``, or ``put`` past its timeout)."""


class Empty(Error, _queue.Empty):
    """Nothing in the queue (``get_nowait``, or ``get`` past its timeout)."""


class Timeout(Error, TimeoutError):
    """A call with a timeout ran out of time."""


class EndOfPipe(Error, EOFError):
    """The pipe's writer closed or died and every message was read."""


class BrokenPipe(Error, BrokenPipeError):
    """The pipe's reader closed or died."""


class TaskDoneError(Error, ValueError):
    """``task_done()`` was called more times than items were put."""


class TooLarge(Error, ValueError):
    """The item or message is larger than the queue's item size or the pipe allows."""


class InvalidArgument(Error, ValueError):
    """A bad bus or channel name, or bad channel parameters."""


class Mismatch(Error, ValueError):
    """The channel exists with another kind, element type, length or parameters."""


class Busy(Error):
    """The pipe end is held by another process (one holder per end)."""


class NotFound(Error, LookupError):
    """No channel of that name."""


class Corrupt(Error):
    """The channel's shared state is inconsistent (another process wrote into the segment)."""


class Lagged(Error):
    """A subscriber of a lossy topic fell more than a ring behind: ``missed``
    messages were overwritten before it read them. The next receive goes on
    with the oldest message still in the ring."""

    def __init__(self, message, missed=0):
        super().__init__(message)
        self.missed = missed

    def __reduce__(self):
        return (type(self), (str(self), self.missed))


class TooManySubscribers(Error):
    """The topic already has its largest number of subscribers."""
