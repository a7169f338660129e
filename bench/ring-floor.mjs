// The hardware's floor for a cross-process ring: a minimal single-producer,
// single-consumer ring of 48-byte records in a SharedMemory segment, plain JS
// (no locks, no codec), a child producing and this process consuming; three
// fresh pairs. What multiproc's Queue adds on top of it is its protocol and codec.
// Standalone, not a bench topic: node bench/ring-floor.mjs [records, default 4000000]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const [, , nStr = '4000000', role, name] = process.argv;
const n = Number(nStr);
const CAP = 1 << 18; // words (1 MiB)
const REC = 12; // words a record
const HEAD = CAP + 16; // the consumer's position, on a line of its own
const view = (shm) => new Int32Array(shm.buffer, 0, CAP + 64);
if (role === 'produce') {
  const shm = mp.SharedMemory.attach(name);
  const w = view(shm);
  let t = 0;
  let cachedHead = 0;
  for (let i = 1; i <= n; i++) {
    while (t + REC - cachedHead > CAP - REC) cachedHead = Atomics.load(w, HEAD);
    const o = t % CAP;
    for (let k = 1; k < REC; k++) w[o + k] = i;
    Atomics.store(w, o, i); // commit
    t += REC;
    if ((t % CAP) + REC > CAP) t += CAP - (t % CAP);
  }
  shm.close();
  process.exit(0);
}
const rates = [];
for (let r = 0; r < 3; r++) {
  const shm = mp.SharedMemory.create((CAP + 64) * 4);
  const w = view(shm);
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), nStr, 'produce', shm.name], { stdio: 'inherit' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let h = 0;
  let t0 = 0;
  for (let i = 1; i <= n; i++) {
    const o = h % CAP;
    while (Atomics.load(w, o) !== i);
    if (i === 1) t0 = performance.now();
    h += REC;
    if ((h % CAP) + REC > CAP) h += CAP - (h % CAP);
    Atomics.store(w, HEAD, h);
  }
  rates.push((n / (performance.now() - t0) / 1000).toFixed(2));
  await exited;
  shm.close();
  shm.unlink();
}
console.log(`raw ring, 48-byte records: ${rates.join(', ')} M records/s`);
