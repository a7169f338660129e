import * as mp from 'multiproc';
const q = new mp.Queue();
const mk = (d, arr) => { let o = arr ? [] : { a: 1 }; for (let i = 0; i < d; i++) o = arr ? [o] : { o }; return o; };
const res = [];
for (const arr of [false, true]) for (let d = 500; d <= 12000; d += 500) {
  let r = 'ok';
  try { await q.put(mk(d, arr)); } catch (e) { r = 'put:' + e.constructor.name; }
  if (r === 'ok') try { await q.get(); } catch (e) { r = 'GET-LOST:' + e.constructor.name; }
  res.push(`${arr ? 'arr' : 'obj'}${d}=${r}`);
}
console.log(res.join(' '), 'qsize', q.qsize());
q.close();
