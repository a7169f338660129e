// The first example (`npm run demo`): three worker processes that say hello
// and sleep ~100 ms, joined. The target travels to each child as source
// text, so it is self-contained: everything it needs comes in `args`.
import * as mp from 'multiproc';

const pids = mp.RawArray('i', 3); // shared memory: child i writes its pid into slot i

const workers = ['ada', 'grace', 'linus'].map((who, i) => new mp.Process({
  name: `hello-${who}`,
  target: async (name, slot, out) => {
    const mp = require('multiproc');
    console.log(`${mp.currentProcess().name}: hello from ${name}, pid ${process.pid} (parent ${mp.parentProcess().pid})`);
    await new Promise((r) => setTimeout(r, 100));
    out[slot] = process.pid;
  },
  args: [who, i, pids],
}));

const t0 = performance.now();
for (const w of workers) w.start();
await Promise.all(workers.map((w) => w.join()));
console.log(`joined ${workers.length} workers (${mp.getStartMethod()}) in ${(performance.now() - t0).toFixed(0)} ms;`,
  `exit codes ${workers.map((w) => w.exitCode).join(', ')}; pids seen through shared memory: ${[...pids].join(', ')}`);

// POOL: when the Pool lands (issue 6), map over the three names here:
//   await using pool = new mp.Pool({ processes: 3 });
//   console.log(await pool.map((name) => `hello, ${name}`, ['ada', 'grace', 'linus']));

pids.close();
