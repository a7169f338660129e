// A pending recv() does not keep its Connection alive. Once a GC collects the object, its finalizer
// closes the end (the child's send: BrokenPipeError) and unmaps the pipe under the recv (TypeError).
import * as mp from 'multiproc';
async function child(b) { await new Promise((r) => setTimeout(r, 1000)); try { await b.send('hello'); console.log('child: sent'); } catch (e) { console.log('child: send failed:', e.name); } }
let proc;
function request() {                      // returns the recv's promise; `a` is not kept
  const [a, b] = mp.Pipe();
  proc = new mp.Process({ target: child, args: [b] });
  proc.start(); b.close();
  return a.recv();
}
const reply = request().then((m) => `resolved ${m}`, (e) => `rejected ${e.constructor.name}: ${e.message}`);
const churn = setInterval(() => globalThis.gc(), 100);
console.log('parent:', await reply, '(expected: resolved hello)');
clearInterval(churn); await proc.join();
