// How long a pipe reader that is asleep takes to see a message: from the
// writer's send() to the reader's JS, with the reader idle ~3 ms before each
// message (so it has slept, not polled). Async recv() and blocking recvSync().
// Standalone, not a bench topic: node bench/wake-latency.mjs
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const n = 200;
if (process.argv[2] === 'child') {
  const c = mp.fromHandle(JSON.parse(process.argv[3]));
  const mode = process.argv[4];
  const lats = [];
  for (let i = 0; i < n; i++) {
    const t = mode === 'sync' ? c.recvSync() : await c.recv();
    lats.push(performance.timeOrigin + performance.now() - t);
  }
  lats.sort((a, b) => a - b);
  const q = (p) => (lats[Math.floor(p * (n - 1))] * 1000).toFixed(0);
  console.log(`${mode.padEnd(5)} recv: wake-up latency µs  p10 ${q(0.1)}  p50 ${q(0.5)}  p90 ${q(0.9)}  max ${q(1)}`);
  await c.recv();
  c.close();
} else {
  for (const mode of ['async', 'sync']) {
    const [a, b] = mp.Pipe();
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', JSON.stringify(mp.toHandle(b)), mode], { stdio: 'inherit' });
    b.close();
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setTimeout(r, 3));
      await a.send(performance.timeOrigin + performance.now());
    }
    await a.send(0);
    await new Promise((r) => child.on('exit', r));
    a.close();
  }
}
