"""Start+join of a no-op child per start method, for bench/process.bench.mjs.
Prints one JSON object: {"spawn": ms, "forkserver": ms, "fork": ms} (medians)."""
import json
import multiprocessing as mp
import statistics
import sys
import time


def noop():
    pass


def measure(method, n):
    ctx = mp.get_context(method)
    p = ctx.Process(target=noop)  # warm-up (starts the forkserver)
    p.start()
    p.join()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


if __name__ == '__main__':
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    out = {}
    for m in ('spawn', 'forkserver', 'fork'):
        try:
            out[m] = measure(m, n)
        except Exception as e:  # a method this platform lacks
            out[m] = None
    print(json.dumps(out))
