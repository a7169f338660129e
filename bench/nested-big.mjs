// A 64 MB Buffer inside an item ({ id, b }) against a top-level one: await
// q.put() then await q.get() in one process, medians of 12 (ms). Nested big
// views travel in segments of their own (codec Tag.BlobRef).
// Standalone, not a bench topic: node bench/nested-big.mjs [MB, default 64]
import * as mp from 'multiproc';

const mb = Number(process.argv[2] ?? 64);
const q = new mp.Queue();
const b = Buffer.alloc(mb << 20, 1);
const median = async (make) => {
  const times = [];
  for (let i = 0; i < 12; i++) {
    const t = performance.now();
    await q.put(make(i));
    const v = await q.get();
    times.push(performance.now() - t);
    if ((Buffer.isBuffer(v) ? v : v.b).length !== b.length) throw new Error('wrong length');
  }
  return times.sort((x, y) => x - y)[6].toFixed(1);
};
console.log(`nested ${mb} MB put+get median ${await median((i) => ({ id: i, b }))} ms`);
console.log(`top-level ${mb} MB put+get median ${await median(() => b)} ms`);
q.close();
