"""Pipes between real processes: claim on first use, poll, EOF, broken pipe."""

import multiprocessing as mp
import os
import signal

import pytest

import shmbus

WATCHDOG = 120


def send_some_then_die(w, n, how):
    for i in range(n):
        w.send_bytes(b"m%d" % i)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(0)


def echo(r, w):
    while True:
        try:
            m = r.recv_bytes()
        except EOFError:
            return
        w.send_bytes(m)


def test_send_recv_bytes_and_objects(bus):
    r, w = bus.Pipe("basic")
    w.send_bytes(b"abcdef", 1, 3)
    w.send({"k": (1, 2)})
    assert r.recv_bytes() == b"bcd"
    assert r.recv() == {"k": (1, 2)}
    assert r.readable and w.writable


def test_poll_does_not_consume(bus):
    r, w = bus.Pipe("poll")
    assert r.poll() is False
    assert r.poll(0.05) is False
    w.send_bytes(b"one")
    assert r.poll(WATCHDOG) is True
    assert r.poll() is True
    assert r.recv_bytes() == b"one"
    assert r.poll() is False


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_eof_when_writer_process_dies(bus, method, how):
    ctx = mp.get_context(method)
    r, w = bus.Pipe(f"eof-{method}-{how}")
    p = ctx.Process(target=send_some_then_die, args=(w, 3, how))
    p.start()
    assert [r.recv_bytes(timeout=WATCHDOG) for _ in range(3)] == [b"m0", b"m1", b"m2"]
    with pytest.raises(EOFError):
        r.recv_bytes(timeout=WATCHDOG)
    p.join(WATCHDOG)


def drain_and_report(r, out):
    got = []
    while True:
        try:
            got.append(r.recv_bytes(timeout=WATCHDOG))
        except EOFError:
            break
    out.send_bytes(b",".join(got))


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_eof_when_the_writer_left_before_the_reader_was_used(bus, method, how):
    """As with multiprocessing.Pipe(): the writer sends and is gone before the
    reader's first use, and the reader still gets everything, then EOFError
    (here and in a child the reader is handed to afterwards)."""
    ctx = mp.get_context(method)
    r, w = bus.Pipe(f"early-{method}-{how}")
    p = ctx.Process(target=send_some_then_die, args=(w, 3, how))
    p.start()
    p.join(WATCHDOG)
    assert p.exitcode is not None
    assert [r.recv_bytes(timeout=WATCHDOG) for _ in range(3)] == [b"m0", b"m1", b"m2"]
    with pytest.raises(EOFError):
        r.recv_bytes(timeout=WATCHDOG)

    r2, w2 = bus.Pipe(f"early2-{method}-{how}")
    res_r, res_w = bus.Pipe(f"early2-result-{method}-{how}")
    p = ctx.Process(target=send_some_then_die, args=(w2, 2, how))
    p.start()
    p.join(WATCHDOG)
    q = ctx.Process(target=drain_and_report, args=(r2, res_w))
    q.start()
    assert res_r.recv_bytes(timeout=WATCHDOG) == b"m0,m1"
    q.join(WATCHDOG)
    assert q.exitcode == 0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_round_trip_through_a_child(bus, method):
    ctx = mp.get_context(method)
    r1, w1 = bus.Pipe(f"there-{method}")
    r2, w2 = bus.Pipe(f"back-{method}")
    p = ctx.Process(target=echo, args=(r1, w2))
    p.start()
    for i in range(200):
        w1.send_bytes(b"%d" % i)
        assert r2.recv_bytes(timeout=WATCHDOG) == b"%d" % i
    w1.close()
    p.join(WATCHDOG)
    assert p.exitcode == 0


def test_one_holder_per_end(bus):
    import subprocess
    import sys

    r, w = bus.Pipe("held")
    w.send_bytes(b"claimed")  # this process now holds the writer
    code = (
        "import shmbus, sys\n"
        "r, w = shmbus.connect(sys.argv[1]).Pipe('held')\n"
        "try:\n"
        "    w.send_bytes(b'x')\n"
        "except shmbus.Busy:\n"
        "    sys.exit(7)\n"
    )
    rc = subprocess.run([sys.executable, "-c", code, bus.name], timeout=WATCHDOG).returncode
    assert rc == 7
    assert r.recv_bytes() == b"claimed"


def test_broken_pipe_when_reader_closed(bus):
    r, w = bus.Pipe("broken")
    w.send_bytes(b"x")
    assert r.recv_bytes() == b"x"
    r.close()
    with pytest.raises(BrokenPipeError):
        for _ in range(100000):
            w.send_bytes(b"y" * 100)
