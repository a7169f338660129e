// put() accepts a deeply nested item that no get() can decode: the item is consumed and lost.
import * as mp from 'multiproc';
const q = new mp.JoinableQueue();
let o = { a: 1 }; for (let i = 0; i < 2000; i++) o = { o };
await q.put(o);                                  // resolves: the fast encoder took it
console.log('after put: qsize', q.qsize(), 'unfinished', q.unfinishedTasks);
try { await q.get(); console.log('get ok'); } catch (e) { console.log('get threw', e.constructor.name, e.message); }
console.log('after get: qsize', q.qsize(), 'unfinished', q.unfinishedTasks);
try { q.getNowait(); } catch (e) { console.log('item gone:', e.constructor.name); }
q.close();
