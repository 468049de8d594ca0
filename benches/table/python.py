# Python's multiprocessing.Value / Array, measured the way benches/table.rs
# measures shmbus. Prints one "name ops_per_s [torn_fraction]" line per case.
import multiprocessing as mp
import sys
import time

N = int(sys.argv[1])
LEN = 16


def writer(arr, stop, locked):
    k = 0.0
    while not stop.value:
        k += 1.0
        row = [k] * LEN
        if locked:
            with arr.get_lock():
                arr[:] = row
        else:
            arr[:] = row


def rate(n, f):
    t = time.perf_counter()
    f(n)
    return n / (time.perf_counter() - t)


def main():
    v = mp.Value("d", 0.0)
    a = mp.Array("d", LEN)
    raw = mp.Array("d", LEN, lock=False)

    def v_read(n):
        for _ in range(n):
            v.value

    def v_write(n):
        for i in range(n):
            v.value = i

    def v_add(n):
        for _ in range(n):
            with v.get_lock():
                v.value += 1

    def a_read(n):
        for _ in range(n):
            a[:]

    def a_write(n):
        row = [1.0] * LEN
        for _ in range(n):
            a[:] = row

    print("value_read", rate(N, v_read))
    print("value_write", rate(N, v_write))
    print("value_add", rate(N, v_add))
    print("array_read", rate(N, a_read))
    print("array_write", rate(N, a_write))

    stop = mp.Value("i", 0)
    p = mp.Process(target=writer, args=(a, stop, True))
    p.start()
    time.sleep(0.2)
    print("array_read_with_writer", rate(N, a_read))
    stop.value = 1
    p.join()

    stop.value = 0
    p = mp.Process(target=writer, args=(raw, stop, False))
    p.start()
    time.sleep(0.2)
    torn = 0
    t = time.perf_counter()
    for _ in range(N):
        row = raw[:]
        if row.count(row[0]) != LEN:
            torn += 1
    r = N / (time.perf_counter() - t)
    stop.value = 1
    p.join()
    print("array_nolock_read_with_writer", r, torn / N)


if __name__ == "__main__":
    main()
