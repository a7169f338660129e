// A forkserver child started on demand (a spare ready: one start every
// ~150 ms): the median of 12 starts of start() alone and of start()+join().
// For A/B runs of a change to the hand-off (alternate two builds run by run).
// Standalone, not a bench topic: node bench/start-on-demand.mjs
import * as mp from 'multiproc';

const noop = { module: new URL('./peers/task-double.mjs', import.meta.url).pathname, export: 'default' };
{
  const p = new mp.Process({ target: noop, args: [1] }); // starts the zygote
  p.start();
  await p.join();
}
const starts = [];
const totals = [];
for (let r = 0; r < 12; r++) {
  await new Promise((res) => setTimeout(res, 150));
  const t = performance.now();
  const p = new mp.Process({ target: noop, args: [1] });
  p.start();
  starts.push(performance.now() - t);
  await p.join();
  totals.push(performance.now() - t);
}
const median = (a) => a.sort((x, y) => x - y)[a.length >> 1].toFixed(2);
console.log(`start() ${median(starts)} ms, start()+join() ${median(totals)} ms (medians of 12)`);
