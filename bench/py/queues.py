"""Python multiprocessing peers for bench/queues.bench.mjs; prints one JSON object.

usage: python3 queues.py <n_items> <n_roundtrips> [runs] [queue_small]
With queue_small, only that row is measured (queues.bench.mjs alternates
such runs with its own Queue runs).
"""
import json
import multiprocessing as mp
import sys
import time

BUF = b"\x07" * 1024


def make(kind, i):
    return BUF if kind == "buf" else {"id": i, "name": f"item-{i}", "tags": ["red", "green", "blue"]}


def q_producer(q, kind, n):
    for i in range(n):
        q.put(make(kind, i))


def p_producer(conn, kind, n):
    for i in range(n):
        conn.send(make(kind, i))


def p_echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv())


def one_way_queue(kind, n):
    # Steady state, as in queues.bench.mjs: the clock starts after the first fifth.
    warm = n // 5
    q = mp.Queue()
    p = mp.Process(target=q_producer, args=(q, kind, n))
    p.start()
    for _ in range(warm):
        q.get()
    t0 = time.perf_counter()
    for _ in range(n - warm):
        q.get()
    dt = time.perf_counter() - t0
    p.join()
    return (n - warm) / dt


def one_way_pipe(kind, n):
    warm = n // 5
    a, b = mp.Pipe()
    p = mp.Process(target=p_producer, args=(b, kind, n))
    p.start()
    for _ in range(warm):
        a.recv()
    t0 = time.perf_counter()
    for _ in range(n - warm):
        a.recv()
    dt = time.perf_counter() - t0
    p.join()
    return (n - warm) / dt


def pipe_rtt(n):
    """(mean, median, cold mean) µs per round trip: n warm-up trips, then n timed, as the JS rows."""
    a, b = mp.Pipe()
    p = mp.Process(target=p_echo, args=(b, 2 * n + 1))
    p.start()
    a.send(0)
    a.recv()
    trips = []
    t = time.perf_counter()
    for i in range(2 * n):
        a.send(i)
        a.recv()
        now = time.perf_counter()
        trips.append(now - t)
        t = now
    p.join()
    cold, warm = trips[:n], sorted(trips[n:])
    return sum(warm) / n * 1e6, warm[n // 2] * 1e6, sum(cold) / n * 1e6


if __name__ == "__main__":
    mp.set_start_method("fork")
    n = int(sys.argv[1])
    rt = int(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 1

    def med(f, *args):
        # median of `runs` fresh runs, as the JS rows
        xs = sorted(f(*args) for _ in range(runs))
        return xs[len(xs) // 2]

    if len(sys.argv) > 4 and sys.argv[4] == "queue_small":
        print(json.dumps({"queue_small": med(one_way_queue, "obj", n)}))
        sys.exit(0)
    print(json.dumps({
        "queue_small": med(one_way_queue, "obj", n),
        "queue_buf": med(one_way_queue, "buf", n),
        "pipe_small": med(one_way_pipe, "obj", n),
        "pipe_buf": med(one_way_pipe, "buf", n),
        **dict(zip(("pipe_rtt_us", "pipe_rtt_median_us", "pipe_rtt_cold_us"), med(pipe_rtt, rt))),
    }))
