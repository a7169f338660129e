// The other process of bench/queues.bench.mjs: node queues-peer.mjs <transport> <role> <kind> <n> [handle]
//   transport: queue | pipe | ipc (child_process) ; worker_threads peers run from the same file
//   role: produce (send n items) | produce-many (queue only: putMany in batches of 256) | produce-sync (queue only: putSync) | echo / echosync (send back what arrives, n times) | big (put n items of <kind> bytes)
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as mp from 'multiproc';

const args = isMainThread ? process.argv.slice(2) : workerData;
const [transport, role, kind, nStr, handleJson] = args;
const n = Number(nStr);
const buf1k = Buffer.alloc(1024, 7);
const kBatch = 256;
const make = kind === 'buf' ? () => buf1k : (i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] });

if (transport === 'queue' || transport === 'pipe') {
  // queue: [items queue, replies queue]; pipe: our end of a duplex pipe.
  const h = JSON.parse(handleJson);
  const ch = transport === 'queue' ? mp.fromHandle(h[0]) : mp.fromHandle(h);
  const back = transport === 'queue' ? mp.fromHandle(h[1]) : ch;
  const put = transport === 'queue' ? (v) => ch.put(v) : (v) => ch.send(v);
  const get = transport === 'queue' ? () => back.get() : () => ch.recv();
  if (role === 'produce') for (let i = 0; i < n; i++) await put(make(i));
  else if (role === 'produce-many') {
    // Batches of kBatch items (putMany): the same items, one lock hold and one await per batch.
    for (let i = 0; i < n; ) {
      const batch = [];
      for (const end = Math.min(n, i + kBatch); i < end; i++) batch.push(make(i));
      await ch.putMany(batch);
    }
  }
  else if (role === 'produce-sync') for (let i = 0; i < n; i++) ch.putSync(make(i));
  else if (role === 'echo') for (let i = 0; i < n; i++) await put(await get());
  else if (role === 'echosync') for (let i = 0; i < n; i++) ch.sendSync(ch.recvSync());
  else if (role === 'big') {
    const size = Number(kind);
    const b = Buffer.alloc(size, 1);
    for (let i = 0; i < n; i++) await put(b);
  }
  await get(); // wait for "done": a big item's segment must outlive our tracker
} else if (transport === 'ipc') {
  if (role === 'produce') for (let i = 0; i < n; i++) process.send(make(i));
  else if (role === 'echo') {
    let left = n;
    process.on('message', (m) => {
      process.send(m);
      if (--left === 0) process.disconnect();
    });
  }
} else if (transport === 'worker') {
  if (role === 'produce') for (let i = 0; i < n; i++) parentPort.postMessage(make(i));
  else if (role === 'echo') {
    let left = n;
    parentPort.on('message', (m) => {
      parentPort.postMessage(m);
      if (--left === 0) parentPort.close();
    });
  }
}
