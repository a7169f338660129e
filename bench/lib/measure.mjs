/**
 * Micro-benchmark helpers shared by the topics.
 *
 * The loop under test lives in the caller's own function literal, `(n) => { ...n iterations...; return acc }`,
 * so each case gets its own JIT feedback and inline caches, and the harness adds one call per run, not per
 * iteration. Method: calibrate n until one run lasts `runMs`, keep running until the code has had `warmupMs`
 * of warm-up (V8 tiers up: interpreter → Sparkplug/Maglev → TurboFan, with OSR for long loops), then time
 * `runs` runs and take the median. Every run's return value goes into a sink that is checked at exit, so the
 * loop cannot be dropped as dead code.
 */
import { execFile } from 'node:child_process';

let sink = 0;
/** Keeps a value alive: the JIT cannot prove it unused. */
export function blackhole(x) {
  sink = (sink + (typeof x === 'bigint' ? Number(x & 0xffffn) : Number(x) | 0)) | 0;
}
/** The running sink (a store to module state, so the JIT must compute what feeds it). */
export function sinkValue() {
  return sink;
}

/** Median of numbers (not in place). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** q-quantile (0..1) by linear interpolation. */
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** Relative spread of samples: half the inter-quartile range over the median (0.02 = ±2 %). */
export function spreadOf(xs) {
  const m = median(xs);
  return m === 0 ? 0 : (quantile(xs, 0.75) - quantile(xs, 0.25)) / 2 / m;
}

const now = () => Number(process.hrtime.bigint());

/** Default settings for ctx.quick and normal runs. */
export function settings(ctx) {
  return ctx.quick ? { runMs: 10, warmupMs: 100, runs: 5 } : { runMs: 40, warmupMs: 400, runs: 15 };
}

/**
 * Times `loop(n)` (which must do n iterations and return something derived from them) and returns
 * { nsPerOp, samples, spread, n }. nsPerOp is the median over the timed runs.
 */
export function nsPerOp(loop, { runMs = 40, warmupMs = 400, runs = 15 } = {}) {
  let n = 256;
  const t0 = now();
  // Calibration doubles as the first part of the warm-up.
  for (;;) {
    const s = now();
    blackhole(loop(n));
    const dt = (now() - s) / 1e6;
    if (dt >= runMs / 4 || n >= 2 ** 30) {
      n = Math.max(1, Math.round((n * runMs) / Math.max(dt, 1e-3)));
      break;
    }
    n *= 2;
  }
  while ((now() - t0) / 1e6 < warmupMs) blackhole(loop(n));
  const samples = [];
  for (let r = 0; r < runs; r++) {
    const s = now();
    blackhole(loop(n));
    samples.push((now() - s) / n);
  }
  return { nsPerOp: median(samples), samples, spread: spreadOf(samples), n };
}

/**
 * Times an async operation `runs` times after `warmup` untimed calls; returns { ms, samples, spread }
 * with ms the median wall time of one call.
 */
export async function msPerCall(fn, { runs = 5, warmup = 1 } = {}) {
  for (let i = 0; i < warmup; i++) blackhole(await fn());
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const s = now();
    blackhole(await fn());
    samples.push((now() - s) / 1e6);
  }
  return { ms: median(samples), samples, spread: spreadOf(samples) };
}

/**
 * Runs `python3 <script> [args]` and parses the JSON object it prints on stdout.
 * Rejects with the script's stderr when it fails.
 */
export function runPython(ctx, script, args = [], { timeoutMs = 300_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(ctx.python, [script, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${ctx.python} ${script} failed: ${err.message}\n${stderr}`.trim()));
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`${script} did not print JSON: ${stdout.slice(0, 500)}\n${stderr}`.trim()));
      }
    });
  });
}
