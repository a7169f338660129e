"""Python peers for bench/sync.bench.mjs; prints one JSON object.

  uncontended: multiprocessing.Lock acquire()+release() in one process, ns/op
  contended:   two processes each doing n acquire()+release() on one Lock, ns per pair overall
  pingpong:    two processes alternating on two multiprocessing.Events, us/round trip
"""
import json
import multiprocessing as mp
import sys
import time


def partner(a, b, rounds):
    for _ in range(rounds):
        a.wait()
        a.clear()
        b.set()


def contender(lock, counter, ready, go, n):
    with ready.get_lock():
        ready.value += 1
    go.wait()
    for _ in range(n):
        lock.acquire()
        counter.value += 1
        lock.release()


def contended(n):
    lock = mp.Lock()
    counter = mp.RawValue('i', 0)
    ready = mp.Value('i', 0)
    go = mp.Event()
    procs = [mp.Process(target=contender, args=(lock, counter, ready, go, n)) for _ in range(2)]
    for p in procs:
        p.start()
    while ready.value < 2:
        time.sleep(0.002)
    t0 = time.perf_counter_ns()
    go.set()
    for p in procs:
        p.join()
    ns = (time.perf_counter_ns() - t0) / (2 * n)
    assert counter.value == 2 * n, counter.value
    return ns


def main():
    quick = '--quick' in sys.argv
    n = 200_000 if quick else 1_000_000
    lock = mp.Lock()
    best = float('inf')
    for _ in range(3 if quick else 5):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            lock.acquire()
            lock.release()
        best = min(best, (time.perf_counter_ns() - t0) / n)

    rounds = 2_000 if quick else 10_000
    warm = 200
    a, b = mp.Event(), mp.Event()
    p = mp.Process(target=partner, args=(a, b, rounds + warm))
    p.start()
    for i in range(rounds + warm):
        if i == warm:
            t0 = time.perf_counter_ns()
        a.set()
        b.wait()
        b.clear()
    pingpong = (time.perf_counter_ns() - t0) / rounds / 1000
    p.join()
    print(json.dumps({'uncontended_ns': best, 'pingpong_us': pingpong,
                      'contended_ns': contended(100_000 if quick else 500_000)}))


if __name__ == '__main__':
    main()
