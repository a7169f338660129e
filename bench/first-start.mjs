// How long the first forkserver start() of a process blocks its event loop:
// with a cold zygote (booted by that start()), and after
// `await startForkserver()`. Each case in a fresh Node process, three times.
// Standalone, not a bench topic: node bench/first-start.mjs
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const mode = process.argv[2];
if (mode === 'cold' || mode === 'prewarm') {
  if (mode === 'prewarm') await mp.startForkserver();
  const t = performance.now();
  const p = new mp.Process({ target: () => {} });
  p.start();
  const blocked = performance.now() - t;
  await p.join();
  console.log(blocked.toFixed(0));
} else {
  for (const m of ['cold', 'prewarm']) {
    const runs = [0, 1, 2].map(() => execFileSync(process.execPath, [fileURLToPath(import.meta.url), m], { encoding: 'utf8' }).trim());
    console.log(`${m.padEnd(8)} first start() blocked ${runs.join(', ')} ms`);
  }
}
