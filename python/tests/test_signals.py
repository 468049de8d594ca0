"""Blocking calls release the GIL and end promptly on Ctrl-C (SIGINT)."""

import os
import signal
import subprocess
import sys
import threading
import time

import shmbus

WATCHDOG = 120

BLOCKED_CHILD = r"""
import shmbus, sys, time, signal
bus = shmbus.connect(sys.argv[1])
q = bus.Queue("never")
kind = sys.argv[2]
usr1 = []
# Python's own SIGINT handler, as in a terminal (a shell's background job
# starts with SIGINT ignored, and Python then installs none).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGUSR1, lambda *a: usr1.append(1))
print("ready", flush=True)
try:
    if kind == "get":
        print("got", q.get(), len(usr1), flush=True)
    elif kind == "recv":
        r, w = bus.Pipe("never-pipe")
        r.recv_bytes()
    elif kind == "join":
        q.put(1); q.get(); q.join()
    elif kind == "wait_changed":
        bus.Value("never-v", "q").wait_changed()
    elif kind == "topic_recv":
        bus.Topic("never-t").subscribe().recv()
    elif kind == "topic_publish":
        t = bus.Topic("full-t", slots=2)
        s = t.subscribe()
        t.publish(1); t.publish(2); t.publish(3)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(3)
"""


def start_blocked(bus, kind):
    p = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_CHILD, bus.name, kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "ready"
    # Until the child sleeps in its wait (a signal before that is handled
    # too, but then this test would not show that the sleep ends).
    deadline = time.monotonic() + WATCHDOG
    while time.monotonic() < deadline:
        with open(f"/proc/{p.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "S":
                break
        time.sleep(0.01)
    time.sleep(0.2)
    return p


def test_sigint_interrupts_blocked_calls(bus):
    for kind in ["get", "recv", "join", "wait_changed", "topic_recv", "topic_publish"]:
        p = start_blocked(bus, kind)
        sent = time.monotonic()
        os.kill(p.pid, signal.SIGINT)
        try:
            out, _ = p.communicate(timeout=WATCHDOG)
        finally:
            p.kill()
        assert p.returncode == 3, (kind, out)
        t = float(out.split()[-1])
        print(f"{kind}: KeyboardInterrupt {1000 * (t - sent):.1f} ms after SIGINT")


def test_a_handler_that_does_not_raise_lets_the_wait_go_on(bus):
    q = bus.Queue("never")
    p = start_blocked(bus, "get")
    os.kill(p.pid, signal.SIGUSR1)
    time.sleep(0.3)
    assert p.poll() is None  # still waiting
    q.put("late")
    try:
        out, _ = p.communicate(timeout=WATCHDOG)
    finally:
        p.kill()
    assert p.returncode == 0
    assert out.split()[-3:] == ["got", "late", "1"]


def test_gil_is_released_while_blocked(bus):
    q = bus.Queue("gil")
    progress = []
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=WATCHDOG)))
    t.start()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        progress.append(1)
    assert t.is_alive() and len(progress) > 0
    q.put("done")
    t.join(WATCHDOG)
    assert got == ["done"]
