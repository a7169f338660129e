// How long start() blocks the event loop when a Process is given a big
// argument (a Buffer of 1, 5 and 20 MB), forkserver, after one warm-up start.
// Standalone, not a bench topic: node bench/start-bigargs.mjs
import * as mp from 'multiproc';

const warm = new mp.Process({ target: () => {} });
warm.start();
await warm.join();
for (const mb of [1, 5, 20]) {
  const arg = Buffer.alloc(mb << 20, 7);
  const t = performance.now();
  const p = new mp.Process({ target: (b) => { if (b.length === 0) process.exit(3); }, args: [arg] });
  p.start();
  const blocked = performance.now() - t;
  await p.join();
  console.log(`${mb} MB: start() blocked ${blocked.toFixed(0)} ms; exit ${p.exitCode}`);
}
