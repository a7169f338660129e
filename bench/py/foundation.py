"""Python side of bench/foundation.bench.mjs: multiprocessing.Value / Array access in ns/op.

Prints one JSON object: {"python": version, "cases": {key: {"ns": median ns/op, "spread": ..., "n": ..., "runs": ...}}}.
Same method as the JS side: one loop function per case (locals, as a careful user writes a hot loop),
calibrated to ~40 ms per run, warmed up, median of the timed runs. Python's own loop cost is in every
figure; the *_floor / *_list cases show it.
"""
import json
import multiprocessing as mp
import sys
import time

QUICK = "--quick" in sys.argv
RUN_S, WARMUP_S, RUNS = (0.010, 0.05, 5) if QUICK else (0.040, 0.2, 15)
N = 1024
MASK = N - 1


def measure(loop):
    n = 64
    t0 = time.perf_counter()
    while True:
        s = time.perf_counter()
        loop(n)
        dt = time.perf_counter() - s
        if dt >= RUN_S / 4:
            n = max(1, int(n * RUN_S / dt))
            break
        n *= 2
    while time.perf_counter() - t0 < WARMUP_S:
        loop(n)
    samples = []
    for _ in range(RUNS):
        s = time.perf_counter_ns()
        loop(n)
        samples.append((time.perf_counter_ns() - s) / n)
    samples.sort()
    med = samples[len(samples) // 2] if len(samples) % 2 else (samples[len(samples) // 2 - 1] + samples[len(samples) // 2]) / 2
    q1 = samples[len(samples) // 4]
    q3 = samples[(3 * len(samples)) // 4]
    return {"ns": med, "spread": (q3 - q1) / 2 / med if med else 0, "n": n, "runs": RUNS}


def main():
    raw = mp.Value("i", 1, lock=False)
    locked = mp.Value("i", 1)
    raw_arr = mp.Array("i", range(N), lock=False)
    locked_arr = mp.Array("i", range(N))
    lst = list(range(N))

    def value_read_raw(n, v=raw):
        s = 0
        for _ in range(n):
            s += v.value
        return s

    def value_read_locked(n, v=locked):
        s = 0
        for _ in range(n):
            s += v.value
        return s

    def value_read_floor(n):
        s = 0
        one = 1
        for _ in range(n):
            s += one
        return s

    def value_write_raw(n, v=raw):
        for i in range(n):
            v.value = i
        return v.value

    def value_write_locked(n, v=locked):
        for i in range(n):
            v.value = i
        return v.value

    def value_write_floor(n):
        x = 0
        for i in range(n):
            x = i
        return x

    def array_read_raw(n, a=raw_arr):
        s = 0
        for i in range(n):
            s += a[i & MASK]
        return s

    def array_read_locked(n, a=locked_arr):
        s = 0
        for i in range(n):
            s += a[i & MASK]
        return s

    def array_read_list(n, a=lst):
        s = 0
        for i in range(n):
            s += a[i & MASK]
        return s

    def array_write_raw(n, a=raw_arr):
        for i in range(n):
            a[i & MASK] = i
        return a[0]

    def array_write_locked(n, a=locked_arr):
        for i in range(n):
            a[i & MASK] = i
        return a[0]

    def array_write_list(n, a=lst):
        for i in range(n):
            a[i & MASK] = i
        return a[0]

    cases = {}
    for f in (value_read_raw, value_read_locked, value_read_floor, value_write_raw, value_write_locked, value_write_floor,
              array_read_raw, array_read_locked, array_read_list, array_write_raw, array_write_locked, array_write_list):
        cases[f.__name__] = measure(f)
    print(json.dumps({"python": sys.version.split()[0], "cases": cases}))


if __name__ == "__main__":
    main()
