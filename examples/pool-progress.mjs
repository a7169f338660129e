// A long map with a progress bar: imapUnordered yields each result as it is
// done, so the bar moves with the work. Run: node examples/pool-progress.mjs
import cliProgress from 'cli-progress';
import * as mp from 'multiproc';

const inputs = Array.from({ length: 200 }, (_, i) => 20 + (i % 8));
const bar = new cliProgress.SingleBar({ format: 'fib {bar} {value}/{total} | {eta}s left' }, cliProgress.Presets.shades_classic);
const pool = new mp.Pool();
try {
  bar.start(inputs.length, 0);
  let sum = 0;
  for await (const r of pool.imapUnordered((n) => {
    const fib = (k) => (k < 2 ? k : fib(k - 1) + fib(k - 2));
    return fib(n);
  }, inputs, { chunksize: 4 })) {
    sum += r;
    bar.increment();
  }
  bar.stop();
  console.log(`sum of ${inputs.length} results: ${sum}`);
} finally {
  pool.close();
  await pool.join();
}
