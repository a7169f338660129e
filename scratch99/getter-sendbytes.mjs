// A sendBytes() from inside a getter of an item being sent corrupts that item (send() from a getter is refused).
import * as mp from 'multiproc';
const [a, b] = mp.Pipe();
const item = { x: 1, get y() { a.sendBytes(Buffer.from('zz')); return 2; } };
try { await a.send(item); } catch (e) { console.log('send threw', e.message); }
for (let i = 0; i < 2; i++) { try { console.log('recv', await b.recv({ timeout: 200 })); } catch (e) { console.log('recv threw', e.constructor.name); } }
a.close(); b.close();
