"""Queues between real processes, under the fork and spawn start methods."""

import multiprocessing as mp
import pickle
import queue

import pytest

import shmbus

WATCHDOG = 120  # seconds: a hang guard only


def produce(q, tag, n):
    for i in range(n):
        q.put((tag, i))


def consume(q, out, stop):
    got = []
    while True:
        item = q.get()
        if item == stop:
            break
        got.append(item)
    out.put(got)


def test_put_get_objects_and_bytes(bus):
    q = bus.Queue("q", maxsize=8, item_size=256)
    q.put({"any": "object", "n": [1, 2.5]})
    q.put_bytes(b"raw")
    assert q.qsize() == 2 and not q.empty()
    assert q.get() == {"any": "object", "n": [1, 2.5]}
    assert q.get_bytes() == b"raw"
    assert q.empty()


def test_nowait_and_timeouts_raise_queue_exceptions(bus):
    q = bus.Queue("small", maxsize=2, item_size=64)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(shmbus.Empty):
        q.get(timeout=0.05)
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(shmbus.Full):
        q.put(3, timeout=0.05)
    with pytest.raises(ValueError):
        q.put(b"x" * 1000)  # larger than item_size
    assert [q.get(), q.get()] == [1, 2]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_producer_consumer_processes(bus, method):
    ctx = mp.get_context(method)
    q = bus.Queue("pc")
    p = ctx.Process(target=produce, args=(q, "p", 500))
    p.start()
    got = [q.get(timeout=WATCHDOG) for _ in range(500)]
    p.join(WATCHDOG)
    assert p.exitcode == 0
    assert got == [("p", i) for i in range(500)]


def test_exactly_once_four_producers_four_consumers(bus):
    ctx = mp.get_context("fork")
    q = bus.Queue("mpmc", maxsize=64)
    out = ctx.Queue()
    n = 1000
    producers = [ctx.Process(target=produce, args=(q, t, n)) for t in range(4)]
    consumers = [ctx.Process(target=consume, args=(q, out, "stop")) for _ in range(4)]
    for p in producers + consumers:
        p.start()
    for p in producers:
        p.join(WATCHDOG)
        assert p.exitcode == 0
    for _ in consumers:
        q.put("stop")
    got = []
    for _ in consumers:
        got.extend(out.get(timeout=WATCHDOG))
    for c in consumers:
        c.join(WATCHDOG)
        assert c.exitcode == 0
    assert len(got) == 4 * n
    assert sorted(got) == sorted((t, i) for t in range(4) for i in range(n))


def work(jq, results):
    while True:
        item = jq.get()
        if item is None:
            jq.task_done()
            break
        results.put(item * item)
        jq.task_done()


def test_joinable_queue_join_and_task_done(bus):
    ctx = mp.get_context("fork")
    jq = bus.JoinableQueue("work")
    results = bus.Queue("results")
    workers = [ctx.Process(target=work, args=(jq, results)) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(100):
        jq.put(i)
    for _ in workers:
        jq.put(None)
    jq.join(timeout=WATCHDOG)
    assert jq.unfinished() == 0
    assert sorted(results.get(timeout=WATCHDOG) for _ in range(100)) == [i * i for i in range(100)]
    for w in workers:
        w.join(WATCHDOG)
        assert w.exitcode == 0
    with pytest.raises(ValueError):
        jq.task_done()


def test_join_timeout_raises_timeout_error(bus):
    jq = bus.JoinableQueue("undone")
    jq.put(1)
    jq.get()
    with pytest.raises(TimeoutError):
        jq.join(timeout=0.05)
    jq.task_done()
    jq.join(timeout=WATCHDOG)


def test_handles_pickle_by_name(bus):
    q = bus.JoinableQueue("named")
    q.put("hello")
    q2 = pickle.loads(pickle.dumps(q))
    assert type(q2) is shmbus.JoinableQueue and q2.name == "named" and q2.bus == bus.name
    assert q2.get() == "hello"
    assert pickle.loads(pickle.dumps(bus)).name == bus.name


def test_module_level_names_use_the_default_bus(daemon, monkeypatch):
    monkeypatch.setenv("SHMBUS_BUS", daemon.bus)
    q = shmbus.Queue("default")
    assert q.bus == daemon.bus
    r, w = shmbus.Pipe("defpipe")
    w.send(1)
    assert r.recv() == 1


def test_unrelated_process_opens_by_name(bus):
    import subprocess
    import sys

    q = bus.Queue("unrelated")
    code = (
        "import shmbus, sys\n"
        "q = shmbus.connect(sys.argv[1]).Queue('unrelated')\n"
        "q.put({'from': 'another program'})\n"
    )
    subprocess.run([sys.executable, "-c", code, bus.name], check=True, timeout=WATCHDOG)
    assert q.get(timeout=WATCHDOG) == {"from": "another program"}


def test_missing_daemon_raises_connection_error():
    with pytest.raises(ConnectionError):
        shmbus.connect("pytest-no-such-daemon-here")
