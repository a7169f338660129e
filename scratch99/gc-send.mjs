// Same root cause, send side: a send() waiting for room whose Connection object is dropped.
import * as mp from 'multiproc';
async function child(b) { await new Promise((r) => setTimeout(r, 1000)); const got = []; try { for (;;) got.push((await b.recv({ timeout: 1000 })).length); } catch (e) { console.log('child: got', got.length, 'messages, then', e.name); } }
let proc;
function pump() {
  const [a, b] = mp.Pipe(true, { capacityBytes: 4096 });
  proc = new mp.Process({ target: child, args: [b] });
  proc.start(); b.close();
  const ps = []; for (let i = 0; i < 10; i++) ps.push(a.send('x'.repeat(800)));
  return Promise.allSettled(ps);            // `a` is dropped; later sends wait for room
}
const done = pump();
const churn = setInterval(() => globalThis.gc(), 100);
console.log('parent sends:', (await done).map((r) => r.status === 'fulfilled' ? 'ok' : r.reason.constructor.name).join(','));
clearInterval(churn); await proc.join();
