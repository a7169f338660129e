// One producer: an async put waiting for room, then a putSync. The consumer receives them out of call order.
import * as mp from 'multiproc';
const q = new mp.Queue(1);
async function consumer(q) {
  await new Promise((r) => setTimeout(r, 300));
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await q.get());
  console.log('consumer got', got.join(','));
}
await q.put('x');                       // the queue is now full (maxsize 1)
const pa = q.put('a');                  // waits for room
const p = new mp.Process({ target: consumer, args: [q] });
p.start();
q.putSync('b');                         // called after put('a')
await pa;
await p.join();
console.log('expected x,a,b');
q.close();
