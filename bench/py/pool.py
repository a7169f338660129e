"""Python side of bench/pool-peers.bench.mjs: multiprocessing.Pool with 2 workers on trivial tasks.

Prints one JSON object:
  {"python": version, "tasks": N,
   "throughput": {"chunksize_1": {...}, "chunksize_auto": {...}},   # tasks/s, median of the runs
   "first_map": {...},                                                # tasks/s, a fresh Pool(2)'s first map (automatic chunksize)
   "startup": {"fork": {...}, "forkserver": {...}, "spawn": {...}}}  # ms, Pool(2) start + first result + shutdown
Throughput is measured on a started, warmed pool (one untimed map first, then the median of the runs;
Pool(2) with the platform's default start method:
fork on Linux with Python < 3.14). Start-up is `with ctx.Pool(2) as p: p.apply(double, (1,))`: the `with`
block ends with terminate(), which also joins the workers. One untimed warm-up first (it starts the
forkserver, fills the page cache).
"""
import json
import multiprocessing as mp
import sys
import time

QUICK = "--quick" in sys.argv
TASKS = 20_000 if QUICK else 100_000
THROUGHPUT_RUNS = 1 if QUICK else 5
STARTUP_RUNS = 3 if QUICK else 7


def double(x):
    return x * 2


def summary(samples):
    s = sorted(samples)
    n = len(s)
    med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    spread = (s[(3 * n) // 4] - s[n // 4]) / 2 / med if n > 1 and med else 0
    return med, spread


def throughput(pool, chunksize):
    rates = []
    items = range(TASKS)
    pool.map(double, items, chunksize=chunksize)  # untimed, as bench/pool.bench.mjs does for every contender
    for _ in range(THROUGHPUT_RUNS):
        t = time.perf_counter()
        out = pool.map(double, items, chunksize=chunksize)
        dt = time.perf_counter() - t
        assert len(out) == TASKS and out[-1] == 2 * (TASKS - 1)
        rates.append(TASKS / dt)
    med, spread = summary(rates)
    return {"value": med, "spread": spread, "runs": THROUGHPUT_RUNS}


def startup(method):
    ctx = mp.get_context(method)

    def once():
        t = time.perf_counter()
        with ctx.Pool(2) as p:
            assert p.apply(double, (21,)) == 42
        return (time.perf_counter() - t) * 1000

    once()
    med, spread = summary([once() for _ in range(STARTUP_RUNS)])
    return {"value": med, "spread": spread, "runs": STARTUP_RUNS}


def first_map(runs):
    """Tasks/s of the first map (automatic chunksize) of fresh Pool(2)s, after one apply."""
    rates = []
    for _ in range(runs):
        with mp.Pool(2) as pool:
            pool.apply(double, (1,))
            t = time.perf_counter()
            out = pool.map(double, range(TASKS))
            dt = time.perf_counter() - t
            assert out[-1] == 2 * (TASKS - 1)
            rates.append(TASKS / dt)
    med, spread = summary(rates)
    return {"value": med, "spread": spread, "runs": runs}


def main():
    result = {"python": sys.version.split()[0], "tasks": TASKS, "default_method": mp.get_start_method(), "throughput": {}, "startup": {}}
    with mp.Pool(2) as pool:
        pool.map(double, range(1000), chunksize=1)  # workers up and warm
        result["throughput"]["chunksize_1"] = throughput(pool, 1)
        result["throughput"]["chunksize_auto"] = throughput(pool, None)
    result["first_map"] = first_map(1 if QUICK else 5)
    for method in ("fork", "forkserver", "spawn"):
        if method in mp.get_all_start_methods():
            result["startup"][method] = startup(method)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
