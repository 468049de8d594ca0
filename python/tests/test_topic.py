"""Topics between real processes: every subscriber receives every message in
order; a lossy subscriber that falls behind learns exactly how many it missed;
history."""

import multiprocessing as mp
import pickle
import queue

import pytest

import shmbus

WATCHDOG = 120  # seconds: a hang guard only


def subscribe_and_collect(topic, n, ready, out):
    sub = topic.subscribe()
    ready.put(1)
    out.put([sub.recv(timeout=WATCHDOG) for _ in range(n)])


def publish_all(topic, n):
    for i in range(n):
        topic.publish(("m", i))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_one_publisher_three_subscriber_processes_each_get_everything_in_order(bus, method):
    ctx = mp.get_context(method)
    # A small ring, so that the publisher waits for the slowest subscriber.
    t = bus.Topic("fan", slots=16, slot_size=64)
    n = 2000
    ready, out = ctx.Queue(), ctx.Queue()
    subs = [ctx.Process(target=subscribe_and_collect, args=(t, n, ready, out)) for _ in range(3)]
    for p in subs:
        p.start()
    for _ in subs:
        ready.get(timeout=WATCHDOG)
    pub = ctx.Process(target=publish_all, args=(t, n))
    pub.start()
    got = [out.get(timeout=WATCHDOG) for _ in subs]
    for p in subs + [pub]:
        p.join(WATCHDOG)
        assert p.exitcode == 0
    want = [("m", i) for i in range(n)]
    assert got == [want, want, want]


def test_lossless_publisher_waits_for_the_slowest_subscriber(bus):
    t = bus.Topic("lossless", slots=4, slot_size=32)
    assert not t.lossy and t.slots == 4 and t.slot_size == 32
    sub = t.subscribe()
    for i in range(4):
        t.publish_bytes(bytes([i]))
    with pytest.raises(queue.Full):
        t.publish_bytes(b"x", block=False)
    with pytest.raises(shmbus.Full):
        t.publish(b"x", timeout=0.05)
    assert [sub.recv_bytes() for _ in range(4)] == [bytes([i]) for i in range(4)]
    with pytest.raises(queue.Empty):
        sub.recv_bytes(block=False)
    with pytest.raises(shmbus.Empty):
        sub.recv(timeout=0.05)
    with pytest.raises(ValueError):
        t.publish_bytes(b"y" * 33)  # larger than slot_size


def lag_behind(topic, lead, ready, go, out):
    sub = topic.subscribe()
    ready.put(1)
    go.get(timeout=WATCHDOG)
    got = []
    try:
        sub.recv(block=False)
    except shmbus.Lagged as e:
        got.append(("lagged", e.missed))
    while True:
        try:
            got.append(sub.recv(block=False))
        except shmbus.Empty:
            break
    out.put(got)


@pytest.mark.parametrize("extra", [1, 5, 37])
def test_lossy_subscriber_that_falls_behind_gets_the_exact_count(bus, extra):
    ctx = mp.get_context("fork")
    slots = 8
    t = bus.Topic(f"lossy{extra}", slots=slots, slot_size=64, lossy=True)
    assert t.lossy
    ready, go, out = ctx.Queue(), ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=lag_behind, args=(t, extra, ready, go, out))
    p.start()
    ready.get(timeout=WATCHDOG)
    n = slots + extra
    for i in range(n):
        t.publish(i, block=False)  # a lossy topic never waits
    go.put(1)
    got = out.get(timeout=WATCHDOG)
    p.join(WATCHDOG)
    assert p.exitcode == 0
    # At least `extra` were overwritten; what was missed and what follows
    # account for every message published, once, in order: the count is
    # exact.
    assert got[0][0] == "lagged"
    missed = got[0][1]
    assert extra <= missed < n
    assert got[1:] == list(range(missed, n))


def test_lagged_is_an_error_with_missed_and_poll_keeps_it_for_recv(bus):
    t = bus.Topic("lag-poll", slots=4, slot_size=32, lossy=True)
    sub = t.subscribe()
    for i in range(7):
        t.publish(i)
    assert sub.poll()
    with pytest.raises(shmbus.Error) as e:
        sub.recv()
    missed = e.value.missed
    assert isinstance(e.value, shmbus.Lagged) and 3 <= missed < 7
    assert "lagged" in str(e.value)
    assert pickle.loads(pickle.dumps(e.value)).missed == missed
    assert [sub.recv() for _ in range(7 - missed)] == list(range(missed, 7))
    assert not sub.poll()


def test_history(bus):
    t = bus.Topic("hist", slots=8, slot_size=32)
    for i in range(5):
        t.publish(i)
    late = t.subscribe()
    some = t.subscribe(history=3)
    ring = t.subscribe(history=100)  # at most what is still there
    t.publish(5)
    assert late.recv() == 5 and not late.poll()
    assert [some.recv() for _ in range(4)] == [2, 3, 4, 5]
    assert [ring.recv() for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    for s in (late, some, ring):
        with pytest.raises(shmbus.Empty):
            s.recv(block=False)


def test_poll_waits_and_does_not_consume(bus):
    t = bus.Topic("poll")
    sub = t.subscribe()
    assert not sub.poll()
    assert not sub.poll(0.05)
    t.publish({"a": 1})
    assert sub.poll(WATCHDOG) and sub.poll()
    assert sub.pending() >= 1
    assert sub.recv() == {"a": 1}
    assert not sub.poll()


def test_too_many_subscribers_and_close_frees_a_place(bus):
    t = bus.Topic("few", max_subscribers=2)
    assert t.max_subscribers == 2
    a, b = t.subscribe(), t.subscribe()
    with pytest.raises(shmbus.TooManySubscribers):
        t.subscribe()
    a.close()
    assert a.closed
    with pytest.raises(OSError):
        a.recv(block=False)
    with t.subscribe() as c:
        t.publish("x")
        assert b.recv() == c.recv() == "x"
    assert c.closed


def test_topic_pickles_by_name_and_subscriber_does_not(bus):
    t = bus.Topic("named", slots=32)
    t2 = pickle.loads(pickle.dumps(t))
    assert type(t2) is shmbus.Topic and t2.name == "named" and t2.bus == bus.name
    assert t2.slots == 32
    sub = t.subscribe()
    t2.publish("via the copy")
    assert sub.recv() == "via the copy"
    with pytest.raises(TypeError):
        pickle.dumps(sub)


def test_existing_topic_with_other_parameters_is_a_mismatch(bus):
    bus.Topic("params", slots=16)
    assert bus.Topic("params").slots == 16
    with pytest.raises(ValueError):
        bus.Topic("params", slots=32)
    with pytest.raises(ValueError):
        bus.Topic("other", slots=3)  # not a power of two


def use_inherited(sub, out):
    try:
        sub.recv(block=False)
        out.put("used")
    except OSError as e:
        out.put(type(e).__name__)


def test_forked_child_cannot_use_an_inherited_subscriber(bus):
    ctx = mp.get_context("fork")
    t = bus.Topic("inherit")
    sub = t.subscribe()
    out = ctx.Queue()
    p = ctx.Process(target=use_inherited, args=(sub, out))
    p.start()
    assert out.get(timeout=WATCHDOG) == "OSError"
    p.join(WATCHDOG)
    assert p.exitcode == 0
    t.publish(1)
    assert sub.recv(timeout=WATCHDOG) == 1  # the parent's place is intact


def test_module_level_topic_uses_the_default_bus(daemon, monkeypatch):
    monkeypatch.setenv("SHMBUS_BUS", daemon.bus)
    t = shmbus.Topic("default")
    assert t.bus == daemon.bus


def test_gil_is_released_while_a_subscriber_waits(bus):
    import threading
    import time

    t = bus.Topic("gil")
    sub = t.subscribe()
    got = []
    th = threading.Thread(target=lambda: got.append(sub.recv(timeout=WATCHDOG)))
    th.start()
    progress = 0
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        progress += 1
    assert th.is_alive() and progress > 0
    t.publish("done")
    th.join(WATCHDOG)
    assert got == ["done"]
