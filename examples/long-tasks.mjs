// Long tasks: typed module tasks (defineTask), progress from inside a task
// (reportProgress -> onProgress), and cancellation that reaches the running
// task (taskSignal) with a grace period before a kill.
// Run: node examples/long-tasks.mjs
import { pathToFileURL } from 'node:url';
import cliProgress from 'cli-progress';
import * as mp from 'multiproc';

// A task is an export of this module: the workers import it (so it may use
// this module's imports), and defineTask keeps its signature for callers.
export const countPrimes = mp.defineTask(import.meta.url, async function countPrimes(limit) {
  const signal = mp.taskSignal();
  let count = 0;
  for (let n = 2; n <= limit; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
    if (n % 20_000 === 0) {
      mp.reportProgress(n); // goes to the call's onProgress, with this item's index
      await new Promise((r) => setImmediate(r)); // a turn of the loop: a cancel can arrive
      if (signal.aborted) return { limit, count, stoppedAt: n };
    }
  }
  return { limit, count };
});

// Only the main module runs the rest (workers import this file for the task).
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const limits = [200_000, 300_000, 400_000, 500_000];
  const pool = new mp.Pool({ processes: 2 });
  try {
    // Bars on a terminal only: cli-progress starts none without one, and its
    // stop() then printed each bar's format with "{limit}" unfilled.
    const bars = process.stderr.isTTY ? new cliProgress.MultiBar({ format: 'primes <= {limit} {bar} {percentage}%', hideCursor: true }, cliProgress.Presets.shades_grey) : null;
    const perItem = bars === null ? [] : limits.map((limit) => bars.create(limit, 0, { limit }));
    const results = await pool.map(countPrimes, limits, {
      chunksize: 1,
      onProgress: (n, index) => perItem[index]?.update(n),
    });
    limits.forEach((limit, i) => perItem[i]?.update(limit));
    bars?.stop();
    for (const r of results) console.log(`${r.count} primes up to ${r.limit}`);

    // A time limit: the task sees taskSignal() abort and returns early; it has
    // 2 s of grace before its worker would be killed (it needs far less).
    const started = performance.now();
    try {
      await pool.apply(countPrimes, [50_000_000], { timeout: 100, cancelGraceMs: 2000 });
    } catch (e) {
      console.log(`${e.name} after ${(performance.now() - started).toFixed(0)} ms: ${e.message.split(';')[0]}`);
    }
    console.log(`workers: ${pool.stats().workers.map((w) => `pid ${w.pid} (${w.jobsDone} jobs, started in ${w.startupMs?.toFixed(0)} ms)`).join(', ')}`);
  } finally {
    pool.close();
    await pool.join();
  }
}
