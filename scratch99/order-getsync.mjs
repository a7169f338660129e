// One consumer: an async get waiting, then a getSync: the later call takes the first item.
import * as mp from 'multiproc';
const [r, w] = mp.Pipe(false);
async function producer(w) { await new Promise((r) => setTimeout(r, 300)); await w.send('first'); await w.send('second'); }
const p = new mp.Process({ target: producer, args: [w] });
p.start(); w.close();
const pending = r.recv();               // called first
const s = r.recvSync(5000);             // called second
console.log('recv() ->', await pending, '| recvSync() ->', s, '(expected recv() -> first)');
await p.join(); r.close();
