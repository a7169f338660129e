// What a consumer costs the producer of a one-way Queue stream: a child puts
// 400,000 {id, name, tags} objects (`await put`) into a 64 MiB queue and
// reports its ns per put, while this process
//   idle:   waits (drains the queue afterwards),
//   other:  drains a queue of its own (the other CPU busy, no ring shared),
//   paired: gets the items as they come (since the twenty-ninth session it
//           reads 16 records behind once it finds a backlog: channel.ts #readBehind),
//   lagged: gets them starting 60 ms late (the same ring, ~150k items behind).
// Eight rounds of each, interleaved; medians. On this 2-vCPU VM: idle ~390,
// other ~400, paired ~485 before reading behind and ~420 with it, lagged
// ~395 ns: a consumer close behind the producer slows it (by reading the
// lines it has just written).
// Standalone, not a bench topic: node bench/queue-pairing.mjs [rounds]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const [, , arg, h1, h2, h3] = process.argv;
const n = 400_000;
const make = (i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] });

if (arg === 'produce') {
  const [q, ctl, res] = [h1, h2, h3].map((h) => mp.fromHandle(JSON.parse(h)));
  for (let cmd = ctl.getSync(); cmd !== 'exit'; cmd = ctl.getSync()) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await q.put(make(i));
    res.putSync((performance.now() - t0) * 1e6 / n);
  }
  process.exit(0);
}

const rounds = Number(arg ?? 8);
const stream = new mp.Queue({ capacityBytes: 64 << 20 });
const own = new mp.Queue({ capacityBytes: 64 << 20 });
const ctl = new mp.Queue();
const res = new mp.Queue();
const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'produce', ...[stream, ctl, res].map((x) => JSON.stringify(mp.toHandle(x)))], { stdio: 'inherit' });
const exited = new Promise((resolve) => child.on('exit', resolve));
const drain = (q) => {
  while (q.qsize() > 0) q.getManyNowait(10_000);
};
const out = { idle: [], other: [], paired: [], lagged: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of Object.keys(out)) {
    if (mode === 'other') for (let i = 0; i < 2 * n; i++) own.putSync(make(i));
    ctl.putSync(mode);
    if (mode === 'other') {
      // Until the producer reports (looked at every 1024 gets).
      for (let k = 1; (k & 1023) !== 0 || res.qsize() === 0; k++) await own.get();
      drain(own);
    } else if (mode !== 'idle') {
      if (mode === 'lagged') await new Promise((resolve) => setTimeout(resolve, 60));
      for (let got = 0; got < n; got++) await stream.get();
    }
    out[mode].push(await res.get());
    drain(stream);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (const [mode, xs] of Object.entries(out)) console.log(`${mode.padEnd(7)} ${median(xs).toFixed(0)} ns/put  (${xs.map((x) => x.toFixed(0)).join(' ')})`);
ctl.putSync('exit');
await exited;
for (const q of [stream, own, ctl, res]) q.close();
