"""Values and arrays between real processes: locked increments, no torn reads."""

import ctypes
import multiprocessing as mp
import pickle

import pytest

import shmbus

WATCHDOG = 120


def increment(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def write_rows(a, n, done):
    for k in range(1, n + 1):
        a[:] = [k] * len(a)
    done.value = 1


def test_value_basics(bus):
    v = bus.Value("v", "d", 1.5)
    assert v.value == 1.5
    v.value = 2.25
    assert v.value == 2.25
    again = bus.Value("v", "d", 99.0)  # written before: the initial value is not applied
    assert again.value == 2.25
    c = bus.Value("c", ctypes.c_int64)
    assert c.fetch_add(5) == 0 and c.fetch_add(1) == 5 and c.value == 6
    with pytest.raises(OverflowError):
        bus.Value("small", "b").value = 1000


def test_get_lock_increments_from_four_processes_sum_exactly(bus):
    ctx = mp.get_context("fork")
    v = bus.Value("counter", "q", 0)
    n = 300
    ps = [ctx.Process(target=increment, args=(v, n)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(WATCHDOG)
        assert p.exitcode == 0
    assert v.value == 4 * n


def test_array_indexing_and_slices(bus):
    a = bus.Array("a", "i", [1, 2, 3, 4])
    assert len(a) == 4 and a[0] == 1 and a[-1] == 4 and a[1:3] == [2, 3]
    a[1:3] = [20, 30]
    a[0] = 10
    assert a[:] == [10, 20, 30, 4] and list(a) == [10, 20, 30, 4]
    with pytest.raises(IndexError):
        a[4]
    with pytest.raises(ValueError):
        a[0:2] = [1]
    with pytest.raises(ValueError):
        bus.Array("a", "i", 5)  # exists with length 4
    b = pickle.loads(pickle.dumps(a))
    assert b[:] == a[:]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_array_never_torn_while_another_process_writes(bus, method):
    ctx = mp.get_context(method)
    a = bus.Array(f"rows-{method}", "q", 16)
    done = bus.Value(f"done-{method}", "b", 0)
    p = ctx.Process(target=write_rows, args=(a, 3000, done))
    p.start()
    reads = torn = 0
    seen = set()
    while not done.value:
        row = a[:]
        reads += 1
        seen.add(row[0])
        if len(set(row)) != 1:
            torn += 1
    p.join(WATCHDOG)
    assert p.exitcode == 0
    assert torn == 0
    assert a[:] == [3000] * 16
    print(f"{reads} reads, {len(seen)} distinct rows, 0 torn")


def test_wait_changed(bus):
    v = bus.Value("w", "q")
    assert v.wait_changed(0.05) is False
    v.value = 1
    assert v.wait_changed(WATCHDOG) is True
    assert v.wait_changed(0.05) is False
