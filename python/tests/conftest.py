"""Fixtures: a real shmbusd per test on a unique bus name, stopped and
cleaned up after the test whatever happens."""

import os
import signal
import subprocess
import time
import uuid

import pytest

import shmbus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shmbusd_path():
    """$SHMBUSD, else the workspace's debug build (python/run-tests builds it)."""
    p = os.environ.get("SHMBUSD") or os.path.join(ROOT, "target", "debug", "shmbusd")
    if not os.access(p, os.X_OK):
        pytest.fail(f"{p} not found: build it with `cargo build -p shmbus-daemon` or set SHMBUSD")
    return p


class Daemon:
    def __init__(self, tag):
        self.bus = f"pytest-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.proc = subprocess.Popen(
            [shmbusd_path(), "--name", self.bus, "--size", "8M"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        deadline = time.monotonic() + 60  # a watchdog, not a speed check
        while True:
            try:
                shmbus.connect(self.bus)
                return
            except (shmbus.DaemonNotRunning, shmbus.Error):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"shmbusd --name {self.bus} did not start: {err}")
                time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The daemon removes its files on SIGTERM; after a kill, we do.
        for p in (f"/dev/shm/{self.bus}",):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


@pytest.fixture
def daemon(request):
    d = Daemon(request.node.name.replace("[", "-").replace("]", "")[:40])
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def bus(daemon):
    return shmbus.connect(daemon.bus)
