// What a shared argument costs a pool task on a worker with a big heap: a
// Pool(1) whose initializer builds ~3M small objects (~230 MB of heap), then
// 2,000 tasks at chunksize 1 of `x => x * 2`, then 2,000 reading `o.value`
// of one Value each (the worker gives shared arguments back by collecting
// garbage: see ReceivedShared in lib/entry/pool-worker.ts).
// Standalone, not a bench topic: node bench/pool-shared-args.mjs [tasks, default 2000] [lock|nolock]
import * as mp from 'multiproc';

const n = Number(process.argv[2] ?? 2000);
const lock = process.argv[3] !== 'nolock';
const pool = new mp.Pool({ processes: 1, initializer: () => { globalThis.big = Array.from({ length: 3_000_000 }, (_, i) => ({ i, s: 'x' + i })); } });
await pool.apply(() => 0);
const v = mp.Value('i', 1, { lock });
let t = performance.now();
await pool.map((x) => x * 2, Array.from({ length: n }, (_, i) => i), { chunksize: 1 });
const plain = performance.now() - t;
t = performance.now();
await pool.map((o) => o.value, Array.from({ length: n }, () => v), { chunksize: 1 });
const shared = performance.now() - t;
const heapMb = Math.round((await pool.apply(() => process.memoryUsage().heapUsed)) / 1e6);
console.log(`worker heap ~${heapMb} MB; ${n} tasks: plain ${plain.toFixed(0)} ms, with a Value${lock ? '' : ' (no lock)'} each ${shared.toFixed(0)} ms`);
await pool.terminate();
v.close();
