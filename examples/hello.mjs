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

// Then the same three names through a Pool: map sends the function once per
// worker and returns results in input order.
// (In TypeScript, or on Node >= 24, `await using pool = new mp.Pool()` closes it for you.)
const pool = new mp.Pool({ processes: 3 });
try {
  const greetings = await pool.map((name) => `hello, ${name}, from pid ${process.pid}`, ['ada', 'grace', 'linus']);
  for (const g of greetings) console.log(g);
} finally {
  pool.close();
  await pool.join();
}

pids.close();
