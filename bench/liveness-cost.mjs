// What a waiter pays to check that a lock's holder is alive, when the holder
// maps many segments: this process maps n extra RawValues and holds a Lock
// for 3 s; four children wait on it with acquire({ timeout: 3000 }) and print
// their CPU time over the wait (process.cpuUsage). The check reads the
// holder's /proc/PID/maps, whose size grows with its mappings.
// Standalone, not a bench topic: node bench/liveness-cost.mjs [n, default 20000]
import * as mp from 'multiproc';

if (mp.parentProcess() === null) {
  const n = Number(process.argv[2] ?? 20000);
  const held = [];
  for (let i = 0; i < n; i++) held.push(mp.RawValue('i', i));
  const lock = new mp.Lock();
  lock.acquireSync();
  const waiters = [0, 1, 2, 3].map(() => new mp.Process({
    target: async (l) => {
      const cpu = process.cpuUsage();
      const t0 = Date.now();
      const got = await l.acquire({ timeout: 3000 });
      const c = process.cpuUsage(cpu);
      console.log(`  waiter: ${((c.user + c.system) / 1000).toFixed(0)} ms of CPU over ${Date.now() - t0} ms (acquired: ${got})`);
    },
    args: [lock],
  }));
  waiters.forEach((p) => p.start());
  await Promise.all(waiters.map((p) => p.join()));
  console.log(`holder maps ${n} extra segments`);
  lock.release();
  for (const v of held) v.close();
  lock.close();
}
