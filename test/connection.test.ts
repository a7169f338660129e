import { describe, expect, it } from 'vitest';
import * as mp from 'multiproc';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { collect, fixture, hasRseqWord, runNode, sleep } from './helpers';
import { spawnChild } from './queue-helpers';
import { kHeaderBytes } from '../dist/cjs/layout.js';
import { kOwnerWords } from '../dist/cjs/ring-buffer.js';

const handle = (c: object): string => JSON.stringify(mp.toHandle(c as mp.Shareable));

describe('Pipe between processes', () => {
  it('duplex: messages go both ways, in order, until EOF', async () => {
    const [mine, theirs] = mp.Pipe();
    const child = collect(spawnChild(fixture('q-pipe.mjs'), [handle(theirs), 'echo']));
    theirs.close(); // the child holds its own reference to that end now
    const msgs: unknown[] = [1, 'two', { three: [3] }, null, Buffer.from('five'), 2n ** 70n, new Map([[1, 'a']])];
    for (let i = 0; i < 2000; i++) msgs.push({ i });
    for (const m of msgs) await mine.send(m);
    for (const m of msgs) expect(await mine.recv()).toEqual(m);
    mine.close();
    const r = await child;
    expect(r.code, r.stderr).toBe(0);
  });

  it('sendBytes / recvBytes carry raw bytes, with offset and size', async () => {
    const [mine, theirs] = mp.Pipe();
    const child = collect(spawnChild(fixture('q-pipe.mjs'), [handle(theirs), 'bytes']));
    theirs.close();
    const src = Buffer.from('0123456789');
    await mine.sendBytes(src, 2, 5);
    expect((await mine.recvBytes()).toString()).toBe('23456');
    await mine.sendBytes(new Uint16Array([1, 2]));
    expect([...(await mine.recvBytes())]).toEqual([1, 0, 2, 0]);
    const big = Buffer.alloc(4 << 20, 9);
    await mine.sendBytes(big);
    expect((await mine.recvBytes()).equals(big)).toBe(true);
    await expect(mine.sendBytes(src, 11)).rejects.toBeInstanceOf(RangeError);
    await expect(mine.sendBytes('abc' as unknown as Buffer)).rejects.toBeInstanceOf(TypeError);
    mine.close();
    expect((await child).code).toBe(0);
  });

  it('a sendBytes() from a getter of an item being sent leaves that item whole: the bytes arrive first, then the item (before: the item arrived as a Buffer of garbage)', async () => {
    const [a, b] = mp.Pipe();
    const item = { x: 1, get y() { void a.sendBytes(Buffer.from('zz')); return 2; } };
    await a.send(item);
    expect([await b.recv({ timeout: 5000 }), await b.recv({ timeout: 5000 })]).toEqual([Buffer.from('zz'), { x: 1, y: 2 }]);
    a.close();
    b.close();
  });

  it('sendSync() while a send() of this process waits for room is refused, and the messages keep their order (before: the later sendSync() arrived first)', async () => {
    const [a, b] = mp.Pipe(true, { capacityBytes: 4096 });
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) sends.push(a.send(`${i}`.padEnd(800, '.'))); // the later ones wait for room
    expect(() => a.sendSync('late')).toThrow(/An earlier send\(\) of this process is still waiting \(for room, or for the pipe's lock, held by another process\), and sendSync\(\) would overtake it/);
    const got: string[] = [];
    for (let i = 0; i < 8; i++) got.push(((await b.recv({ timeout: 5000 })) as string)[0]!);
    await Promise.all(sends);
    a.sendSync('late');
    got.push((await b.recv({ timeout: 5000 })) as string);
    expect(got).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', 'late']);
    a.close();
    b.close();
  });

  it('simplex: [readEnd, writeEnd]; the wrong operation is rejected, here and in a child', async () => {
    const [r, w] = mp.Pipe(false);
    expect(r.readable && !r.writable).toBe(true);
    expect(w.writable && !w.readable).toBe(true);
    await expect(r.send(1)).rejects.toThrow(/read end of a simplex pipe/);
    await expect(w.recv()).rejects.toThrow(/write end of a simplex pipe/);
    expect(() => w.recvSync(0)).toThrow(TypeError);
    await w.send('hello');
    expect(await r.recv()).toBe('hello');
    for (const end of [r, w]) {
      const res = await collect(spawnChild(fixture('q-pipe.mjs'), [handle(end), 'misuse']));
      expect(res.code, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as { wrong: string; message: string };
      expect(out.wrong).toBe('TypeError');
      expect(out.message).toMatch(/simplex pipe/);
    }
    r.close();
    w.close();
  });

  /** A pipe to a child that says 'ready' and then hangs: our end, the child, and its exit. */
  async function hangingPeer(): Promise<{ mine: mp.Connection; kid: ReturnType<typeof spawnChild>; done: ReturnType<typeof collect> }> {
    const [mine, theirs] = mp.Pipe();
    const kid = spawnChild(fixture('q-pipe.mjs'), [handle(theirs), 'hang']);
    const done = collect(kid);
    theirs.close();
    expect(await mine.recv()).toBe('ready');
    return { mine, kid, done };
  }

  /** Sends 1000-byte Buffers until a send fails: how many went, and the error. */
  async function sendUntilRefused(conn: mp.Connection): Promise<{ sent: number; err: unknown }> {
    let sent = 0;
    try {
      for (; sent < 100_000; sent++) await conn.send(Buffer.alloc(1000));
    } catch (err) {
      return { sent, err };
    }
    return { sent, err: undefined };
  }

  it('recv after the peer process is SIGKILLed rejects with EOFError within 2 s', async () => {
    const { mine, kid, done } = await hangingPeer();
    const pending = mine.recv();
    kid.kill('SIGKILL');
    const t0 = performance.now();
    await expect(pending).rejects.toBeInstanceOf(mp.EOFError);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect((await done).signal).toBe('SIGKILL');
    // And a send to the dead peer fails at once: recv() here has seen the
    // death (before: sends were taken until the ring was full, ~1,000 of
    // these, and went nowhere; helper-60).
    const { sent, err } = await sendUntilRefused(mine);
    expect(err).toBeInstanceOf(mp.BrokenPipeError);
    expect((err as Error).message).toMatch(/^The process at the other end of the pipe \(pid \d+\) died$/);
    expect(sent).toBe(0);
    mine.close();
  });

  it('poll(0) says true (EOF ready) once the peer is SIGKILLed: a loop of poll(0) ends, and at once after a recv() saw the death (before: false for good)', async () => {
    const { mine, kid, done } = await hangingPeer();
    expect(await mine.poll(0)).toBe(false); // alive, nothing sent
    kid.kill('SIGKILL');
    await done;
    let ready = false;
    for (const t0 = performance.now(); !ready && performance.now() - t0 < 5000; ) {
      ready = await mine.poll(0);
      if (!ready) await sleep(5);
    }
    expect(ready).toBe(true);
    await expect(mine.recv()).rejects.toBeInstanceOf(mp.EOFError);
    expect(await mine.poll(0)).toBe(true); // the death is known here: no wait for the next slice
    mine.close();
  });

  it('poll() and wait() agree with recv() when a writer sharing an end was SIGKILLed mid-send: not ready while recv() would wait (before: poll() true for good, until a recv() skipped the dead record)', async () => {
    const [r, w] = mp.Pipe(false);
    // The child reserves a record in a send and dies before committing it;
    // this process holds the write end too, so the end lives on (no EOF).
    const kid = await collect(spawnChild(fixture('pipe-writer-killed.mjs'), [handle(w)]));
    expect(kid.signal).toBe('SIGKILL');
    expect(kid.stdout).toBe('armed\n');
    await sleep(250); // past kTrustMs: its pid reads as dead (within it, the record reads as still being written: not ready either)
    expect(await r.poll(0)).toBe(false);
    expect(await r.poll(50)).toBe(false);
    expect(await mp.wait([r], 50)).toEqual([]);
    await expect(r.recv({ timeout: 100 })).rejects.toBeInstanceOf(mp.TimeoutError);
    // A message behind such a record is ready, and is what recv() gets.
    const [r2, w2] = mp.Pipe(false);
    expect((await collect(spawnChild(fixture('pipe-writer-killed.mjs'), [handle(w2)]))).signal).toBe('SIGKILL');
    await w2.send('after');
    await sleep(250);
    expect(await r2.poll(0)).toBe(true);
    expect(await r2.recv({ timeout: 1000 })).toBe('after');
    expect(await r2.poll(0)).toBe(false);
    for (const c of [r, w, r2, w2]) c.close();
  });

  it('poll() agrees with recv() when the dead writer\'s record wrapped: padding committed at head, the record behind it unfinished (before: poll() true for good)', async () => {
    const [r, w] = mp.Pipe(false, { capacityBytes: 4096 });
    const raw = mp.SharedMemory.attach((mp.toHandle(r) as unknown as { name: string }).name);
    const ctl = new Int32Array(raw.buffer, kHeaderBytes + 512, 96); // the ring's control block (after the pipe's own 512 bytes)
    const data = new Int32Array(raw.buffer, kHeaderBytes + 512 + 384, 1024);
    // head (= tail) near the end of the area: the child's 1000-byte record
    // does not fit before it, so its reservation pads to the end and commits
    // the padding; the child dies at the record's own commit (skip 1).
    while ((Atomics.load(ctl, 16) & 4095) < 3400) {
      w.sendSync('a');
      expect(r.recvSync(1000)).toBe('a');
    }
    const kid = await collect(spawnChild(fixture('pipe-writer-killed.mjs'), [handle(w), 'SIGKILL', '1']));
    expect(kid.signal).toBe('SIGKILL');
    expect(kid.stdout).toBe('armed\n');
    expect(Atomics.load(data, (Atomics.load(ctl, 16) & 4095) >> 2)).toBeGreaterThan(0); // the padding, committed
    await sleep(250); // past kTrustMs
    expect(await r.poll(0)).toBe(false);
    expect(await mp.wait([r], 50)).toEqual([]);
    await expect(r.recv({ timeout: 100 })).rejects.toBeInstanceOf(mp.TimeoutError);
    await w.send('after');
    expect(await r.poll(0)).toBe(true);
    expect(await r.recv({ timeout: 1000 })).toBe('after');
    raw.close();
    for (const c of [r, w]) c.close();
  });

  it('poll() says false while a writer stopped mid-send holds its message unfinished, as recv() waits for it; true once it is sent (before: true at once, while recv() waited)', async () => {
    const [r, w] = mp.Pipe(false);
    const kid = spawnChild(fixture('pipe-writer-killed.mjs'), [handle(w), 'SIGSTOP']);
    const done = collect(kid);
    try {
      await new Promise<void>((resolve) => kid.stdout!.on('data', (b: Buffer) => b.toString().includes('armed') && resolve()));
      await sleep(50); // (it prints, then stops itself)
      expect(await r.poll(0)).toBe(false);
      await expect(r.recv({ timeout: 100 })).rejects.toBeInstanceOf(mp.TimeoutError);
      kid.kill('SIGCONT');
      expect(await r.poll(5000)).toBe(true);
      expect(await r.recv({ timeout: 1000 })).toBe('x'.repeat(1000));
      const res = await done;
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toBe('armed\nsent\n');
    } finally {
      kid.kill('SIGKILL');
      await done;
      for (const c of [r, w]) c.close();
    }
  });

  it('a send to a peer SIGKILLed without a recv() here to notice: BrokenPipeError within 32 messages (before: only once the ring was full)', async () => {
    const { mine, kid, done } = await hangingPeer();
    kid.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    const { sent, err } = await sendUntilRefused(mine);
    expect(err).toBeInstanceOf(mp.BrokenPipeError);
    // A few go into the ring: a send looks at its reader every 16 sends (a
    // look at each cost a streaming pipe a cache miss per message), and
    // checks its liveness once it took nothing between two looks.
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThanOrEqual(32);
    mine.close();
  });

  it.each(['forkserver', 'spawn'] as const)('a child (%s) SIGKILLed before it attached its end from the args: recv rejects with EOFError', async (startMethod) => {
    const [a, b] = mp.Pipe();
    const p = new mp.Process({ target: async (c: mp.Connection) => { await c.recv(); }, args: [b], startMethod });
    p.start();
    b.close(); // the Python idiom: the parent drops its copy of the child's end
    p.kill(); // at once: before the child attached b
    await p.join();
    const t0 = Date.now();
    const r = await Promise.race([a.recv().then(() => 'message', (e: Error) => e.name), sleep(5000).then(() => 'still waiting')]);
    expect(r).toBe('EOFError'); // before: still waiting (the end named this process until the child attached it)
    expect(Date.now() - t0).toBeLessThan(2000);
    a.close();
  });

  it('an end lent to a child that exits is still the lender\'s: its reader gets every message and EOF only when the lender closes', async () => {
    const r = await runNode(fixture('pipe-lent-end.mjs'), [], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    // Before: the reader took the worker's exit for the end's ('work 0'-'work 2' only) and the parent's send failed.
    expect(JSON.parse(r.stdout)).toEqual({ send: 'ok', received: ['work 0', 'work 1', 'work 2', 'from parent'] });
  }, 70_000);

  it('a failed put that had taken a handle of a pipe end this process still holds leaves this process among its holders (before: a recv on the other end read EOF once the child that also held it was killed)', async () => {
    const r = await runNode(fixture('pipe-failed-send-holder.mjs'), [], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ failed: 'TypeError', exit: -9, idle: 'TimeoutError' });
  }, 70_000);

  it('a recv() or send() that waits keeps its Connection while GC runs, though the caller no longer holds it (before: the end was closed and unmapped under the call)', async () => {
    const r = await runNode(fixture('pipe-gc-pending.mjs'), [], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ recv: 'hello', replierExit: 0, sends: Array(10).fill('ok'), reader: { n: 10, end: 'EOFError' } });
  }, 70_000);

  it('a worker thread that closes its object for an end the main thread still holds leaves this process among its holders (before: EOFError once the child that also held it was killed)', async () => {
    const r = await runNode(fixture('pipe-worker-thread-holder.mjs'), [], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ worker: 'closed', first: 'from the worker', idle: 'TimeoutError', last: 'from main', end: 'EOFError' });
  }, 70_000);

  it('2 processes reading one end and 3 writing the other get every message exactly once, each writer\'s in order', async () => {
    const r = await runNode(fixture('pipe-shared-end.mjs'), [], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    // Before: ~2% of the messages came twice (the readers raced on the ring's head without its lock).
    expect(JSON.parse(r.stdout)).toEqual({ received: 15000, distinct: 15000, dup: 0, outOfOrder: 0, exits: [0, 0, 0, 0, 0] });
  }, 70_000);

  it('a child that forwards its args\' end through a queue before the parent names it the holder: the reader waits for the forwarded message (before: EOFError, the flake of the test below)', async () => {
    const r = await runNode(fixture('pipe-args-forwarded.mjs'), [], { timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ childDoneBeforeHandOver: true, first: 'forwarded', then: 'EOFError' });
  });

  it('an end shared by two processes, one SIGKILLed: the other goes on (before: the last to attach was taken for the end, EOFError after 1 of 8 messages)', async () => {
    // A handle on its way counts for 60 s; 5 here, so that the lost one's case ends sooner.
    const r = await runNode(fixture('pipe-killed-sharer.mjs'), [], { env: { MULTIPROC_INFLIGHT_SEC: '5' }, timeoutMs: 80_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      writers: ['fast', ...Array.from({ length: 8 }, (_, i) => `slow ${i}`)],
      writersEnd: 'EOFError',
      send: 'ok',
      readers: { sent: 100, received: 100 },
      forwarded: 'forwarded',
      forwardedEnd: 'EOFError',
      lostHandle: 'EOFError',
    });
  }, 90_000);

  it.runIf(process.platform === 'linux')('a peer whose pid went to an unrelated program (a recycled pid) counts as dead: recv rejects with EOFError', async () => {
    const [a, b] = mp.Pipe();
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const raw = mp.SharedMemory.attach((mp.toHandle(a) as unknown as { name: string }).name);
      // The pipe's own words start the payload; end 1's holders (each pid * 2^32
      // + start time in clock ticks since boot) are the 64-bit words from byte
      // 320 (connection.ts kHoldersByte + 24 * 8), this process in the first.
      const ident = new BigInt64Array(raw.buffer, kHeaderBytes + 320, 1);
      const stat = readFileSync(`/proc/${other.pid}/stat`, 'latin1');
      const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      const outcome = async (ms: number) => Promise.race([a.recv().then(() => 'message', (e: Error) => e.name), sleep(ms).then(() => 'waiting')]);
      // The same pid with its own start time: a live peer, recv waits.
      Atomics.store(ident, 0, (BigInt(other.pid!) << 32n) | BigInt((ticks % 0xffffffff) + 1));
      expect(await outcome(700)).toBe('waiting');
      // The same pid with an earlier start time: the peer that wrote it died and its pid was given on.
      Atomics.store(ident, 0, (BigInt(other.pid!) << 32n) | 1n);
      const t0 = performance.now();
      expect(await outcome(3000)).toBe('EOFError');
      expect(performance.now() - t0).toBeLessThan(2000);
      raw.close();
    } finally {
      other.kill('SIGKILL');
      a.close();
      b.close();
    }
  });

  it('each end publishes the CPU it sends from where the other end reads it (pollers yield on a shared CPU)', async () => {
    const [a, b] = mp.Pipe();
    // The child runs pinned to one CPU (taskset) where it can be, else anywhere.
    const allowed = process.platform === 'linux' ? readFileSync('/proc/self/status', 'utf8').match(/Cpus_allowed_list:\s*(\S+)/)?.[1] ?? '' : '';
    const last = Number(allowed.split(/[,-]/).pop());
    const pinned = process.platform === 'linux' && Number.isInteger(last) && spawnSync('taskset', ['-c', String(last), 'true']).status === 0;
    const hb = handle(b);
    const argv = [process.execPath, fixture('q-pipe.mjs'), hb, 'echo'];
    const child = pinned ? spawn('taskset', ['-c', String(last), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const done = collect(child);
    b.close();
    await a.send('ping');
    expect(await a.recv()).toBe('ping');
    // The word the echo's send wrote: ring 0 (the one end 1 writes), its
    // first owner word = the writer's CPU + 1 (connection.ts kWriterCpu),
    // behind the segment header and the pipe's own 512 bytes of words (connection.ts kWords).
    const name = (JSON.parse(hb) as { name: string }).name;
    let word = -1;
    if (process.platform === 'linux') word = readFileSync(`/dev/shm/${name.replace(/^\//, '')}`).readInt32LE(kHeaderBytes + 512 + kOwnerWords * 4);
    a.close();
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    if (!hasRseqWord()) expect(word === -1 || word === 0).toBe(true);
    else if (pinned) expect(word).toBe(last + 1);
    else expect(word).toBeGreaterThan(0);
  });
});

describe('wait() on connections and processes', () => {
  it('resolves with the pipes that have a message and the processes that have exited, in the order given, once one is ready (Python\'s connection.wait)', async () => {
    const events = [new mp.Event(), new mp.Event(), new mp.Event()];
    const [r1, w1] = mp.Pipe(false);
    const [r2, w2] = mp.Pipe(false);
    const sender = async (end: mp.Connection<string>, go: mp.Event, msg: string): Promise<void> => {
      await go.wait();
      await end.send(msg);
    };
    const p1 = new mp.Process({ target: sender, args: [w1, events[0], 'a'] });
    const p2 = new mp.Process({ target: sender, args: [w2, events[1], 'b'] });
    const p3 = new mp.Process({ target: async (go: mp.Event) => void (await go.wait()), args: [events[2]] });
    try {
      await Promise.all([p1.start(), p2.start(), p3.start()]);
      w1.close();
      w2.close();
      expect(await mp.wait([r1, r2, p3], 50)).toEqual([]);
      expect(await mp.wait([r1, r2, p3], 0)).toEqual([]);
      events[1].set();
      expect(await mp.wait([r1, r2, p3])).toEqual([r2]);
      expect(await r2.recv()).toBe('b');
      events[2].set();
      expect(await mp.wait([r1, p3.sentinel])).toEqual([p3]); // Python's p.sentinel is the Process here
      expect(p3.exitCode).toBe(0);
      events[0].set();
      expect(await mp.wait([r1])).toEqual([r1]);
      expect(await r1.recv()).toBe('a');
      await Promise.all([p1.join(), p2.join()]);
      // The end of a stream is ready too (recv() would throw EOFError at once).
      expect(await mp.wait([p1, r1, r2], 0)).toEqual([p1, r1, r2]);
      await expect(r2.recv()).rejects.toBeInstanceOf(mp.EOFError);
    } finally {
      for (const o of [...events, r1, r2, w1, w2]) o.close();
    }
  }, 30_000);

  it('a wait that ends leaves no poll behind: a later message is not taken; closing a watched end rejects; bad input is a clear error', async () => {
    const [a, b] = mp.Pipe();
    const [r, w] = mp.Pipe(false);
    const [a2, b2] = mp.Pipe();
    const [a3, b3] = mp.Pipe();
    try {
      expect(await mp.wait([a, b], 20)).toEqual([]);
      await a.send(1);
      expect(await mp.wait([a, b])).toEqual([b]);
      expect(await b.recv()).toBe(1);
      const pending = mp.wait([a, r]);
      a.close();
      await expect(pending).rejects.toBeInstanceOf(mp.EOFError);
      await expect(mp.wait([])).rejects.toThrow('wait() needs at least one Connection or Process to watch (or a timeout: then it resolves with [] when it passes)');
      expect(await mp.wait([], 10)).toEqual([]); // as Python's wait([], 0.01) (before: a TypeError)
      await expect(mp.wait([{}] as never)).rejects.toThrow('wait() watches Connections (a message to read) and Processes (their exit: pass the Process, or its sentinel), got an object');
      await expect(mp.wait(b as never)).rejects.toThrow(/wait\(\) takes an array of Connections and Processes/);
      await expect(mp.wait([new mp.Process({ target: () => {} })])).rejects.toThrow('wait(): Process-');
      await expect(mp.wait([w])).rejects.toThrow(/write end of a simplex pipe/);
      await expect(mp.wait([b], -1)).rejects.toBeInstanceOf(TypeError);
      // An aborted signal rejects a poll at once, with a message ready or not (before: it answered).
      await a2.send('x');
      await expect(a3.poll({ signal: AbortSignal.abort(new Error('stop')) })).rejects.toThrow('stop');
      await expect(b2.poll({ signal: AbortSignal.abort(new Error('stop')) })).rejects.toThrow('stop');
      expect(await b2.poll()).toBe(true);
    } finally {
      for (const o of [a, b, r, w, a2, b2, a3, b3]) o.close();
    }
  });

  it('waiting on a daemon child alone keeps the script alive until it exits (before: the script ended and the daemon was SIGTERMed)', async () => {
    const r = await runNode(fixture('wait-edge-cases.mjs'), ['daemon'], { timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ready: 1, exitCode: 0 });
  });
});

describe('Pipe in one process', () => {
  it('recvBytes of a message that names shared objects does not keep their references for good', async () => {
    // Before, the references taken for the receiver were never dropped: the segments stayed until the tree ended.
    const r = await runNode(fixture('recvbytes-refs.mjs'), [], { nodeArgs: ['--expose-gc'] });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ left: [] });
  });

  it('for await (const msg of conn) yields every message, then ends when the peer closes (or this end is closed)', async () => {
    const [a, b] = mp.Pipe<number>();
    for (let i = 0; i < 3; i++) await a.send(i);
    a.close();
    const got: number[] = [];
    for await (const m of b) got.push(m);
    expect(got).toEqual([0, 1, 2]);
    b.close();
    const [c, d] = mp.Pipe();
    setTimeout(() => d.close(), 50);
    let n = 0;
    for await (const m of d) n += m === undefined ? 0 : 1; // ends quietly on the local close
    expect(n).toBe(0);
    c.close();
  });

  it('a pipe end in a put, send or start() that failed is given back at once: after close() its peer\'s recv() gets EOFError (it waited for a GC)', async () => {
    const q = new mp.Queue();
    const [c, d] = mp.Pipe();
    const attempts: ((end: mp.Connection) => unknown)[] = [
      (end) => q.putSync([end, () => 1]),
      (end) => new mp.Process({ target: (x: unknown) => x, args: [end, Symbol('no') as never] }).start(),
      (end) => c.send([end, () => 1]),
    ];
    try {
      for (const attempt of attempts) {
        const [a, b] = mp.Pipe();
        await expect((async () => attempt(b))()).rejects.toThrow(TypeError);
        b.close();
        const outcome = await Promise.race([a.recv().then(() => 'item', (e: Error) => e.name), sleep(3000).then(() => 'still waiting')]);
        expect(outcome).toBe('EOFError');
        a.close();
      }
    } finally {
      q.close();
      q[Symbol.dispose]();
      c.close();
      d.close();
    }
  });

  it('a pipe end inside an item nobody will take (its queue or pipe let go by its last holder) is given back: its peer gets EOF (before: waited for good)', async () => {
    // In a queue disposed with the item still in it (helper-66).
    const [a, b] = mp.Pipe();
    const q = new mp.Queue();
    await q.put({ end: b });
    b.close();
    q.close();
    q[Symbol.dispose]();
    await expect(a.recv({ timeout: 5000 })).rejects.toThrow('The other end of the pipe was closed');
    a.close();
    // In a message of a pipe whose both ends are closed unread.
    const [c, d] = mp.Pipe();
    const [x, y] = mp.Pipe(false);
    y.send({ end: d });
    d.close();
    x.close();
    y.close();
    await expect(c.recv({ timeout: 5000 })).rejects.toThrow('The other end of the pipe was closed');
    c.close();
  });

  it('closing a connection ends the recv(), poll() and send() calls still waiting on it with EOFError', async () => {
    const settle = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'resolved', (e: unknown) => e);
    const [a, b] = mp.Pipe();
    const recv = settle(a.recv());
    const poll = settle(a.poll(10_000));
    await sleep(20);
    a.close();
    // Before: both stayed pending for good (the waits slept on memory that close() had unmapped).
    for (const r of [await recv, await poll]) {
      expect(r).toBeInstanceOf(mp.EOFError);
      expect((r as Error).message).toMatch(/closed while a recv\(\) or poll\(\) waited/);
    }
    b.close();
    const [c, d] = mp.Pipe(true, { capacityBytes: 4096 });
    let sent = 0;
    const sending = settle((async () => {
      for (;;) {
        await c.send(Buffer.alloc(1000));
        sent++;
      }
    })());
    await sleep(50);
    expect(sent).toBeGreaterThan(0); // then the ring is full and a send waits
    c.close();
    const err = await sending;
    expect(err).toBeInstanceOf(mp.EOFError);
    expect((err as Error).message).toMatch(/closed while a send\(\) waited for room/);
    d.close();
  });

  it('close: the peer drains what was sent, then gets EOFError; sending to a closed end is BrokenPipeError', async () => {
    const [a, b] = mp.Pipe();
    await a.send(1);
    await a.send(2);
    a.close();
    expect(a.closed).toBe(true);
    await expect(a.send(3)).rejects.toBeInstanceOf(mp.EOFError);
    expect(await b.poll()).toBe(true);
    expect(await b.recv()).toBe(1);
    expect(b.recvSync()).toBe(2);
    expect(await b.poll()).toBe(true); // the end of the stream is "ready" too, as in Python
    await expect(b.recv()).rejects.toBeInstanceOf(mp.EOFError);
    await expect(b.send('x')).rejects.toBeInstanceOf(mp.BrokenPipeError);
    b.close();
  });

  it('poll waits up to its timeout; recvSync times out with TimeoutError', async () => {
    const [a, b] = mp.Pipe();
    expect(await b.poll()).toBe(false);
    expect(await b.poll(30)).toBe(false);
    const later = b.poll(5000);
    await a.send('x');
    expect(await later).toBe(true);
    expect(b.recvSync(100)).toBe('x');
    expect(() => b.recvSync(20)).toThrow(mp.TimeoutError);
    // Said as a Connection's call (before: "get timed out", a queue's words).
    expect(() => b.recvSync(20)).toThrow(/^recv timed out: nothing arrived$/);
    a.close();
    b.close();
  });

  it('an uncloneable message is a TypeError and nothing is sent', async () => {
    const [a, b] = mp.Pipe();
    await expect(a.send(() => 1)).rejects.toBeInstanceOf(TypeError);
    await a.send('ok');
    expect(await b.recv()).toBe('ok');
    expect(await b.poll()).toBe(false);
    expect(() => mp.Pipe('yes' as unknown as boolean)).toThrow(TypeError);
    a.close();
    b.close();
  });

  it('recv() takes { timeout, signal } or a number of ms (as every wait); recvBytes(number) is a TypeError that says what to write (Python\'s recv_bytes(maxlength); before: ignored, and recv(100) waited for ever)', async () => {
    const [a, b] = mp.Pipe();
    try {
      await expect(b.recv({ timeout: 30 })).rejects.toThrow(mp.TimeoutError);
      await expect(b.recvBytes({ timeout: 30 })).rejects.toThrow(mp.TimeoutError);
      const ac = new AbortController();
      const pending = b.recv({ signal: ac.signal });
      ac.abort(new Error('stop'));
      await expect(pending).rejects.toThrow('stop');
      await expect(b.recv(30)).rejects.toThrow(mp.TimeoutError);
      await expect(b.recv('100' as never)).rejects.toThrow('Connection.recv() takes a timeout in milliseconds or { timeout?, signal? }, got "100"');
      await expect(b.recvBytes(3 as never)).rejects.toThrow(/has no maximum length/);
      await a.send('still in order');
      expect(await b.recv({ timeout: 5000 })).toBe('still in order');
    } finally {
      a.close();
      b.close();
    }
  });

  it('a misspelled option is a TypeError naming the closest name (before: ignored, the pipe got the default capacity)', () => {
    const made: mp.Connection[] = [];
    expect(() => made.push(...mp.Pipe(true, { capacityByte: 4096 } as never))).toThrow('Unknown option "capacityByte" for Pipe() (did you mean "capacityBytes"?)');
    expect(() => made.push(...mp.Pipe(false, { size: 4096 } as never))).toThrow('Unknown option "size" for Pipe(); the options are "capacityBytes"');
    // Before: "Cannot read properties of null".
    expect(() => made.push(...mp.Pipe(true, null as never))).toThrow('Expected the Pipe options to be an object like { capacityBytes }, got null');
    expect(() => made.push(...mp.Pipe(true, 5 as never))).toThrow('Expected the Pipe options to be an object like { capacityBytes }, got 5');
    // Options first, as Queue takes them (helper-66): said where they go.
    expect(() => made.push(...mp.Pipe({ capacityBytes: 4096 } as never))).toThrow(/^Expected "duplex" to be a boolean, got .*; the options come second: Pipe\(true, \{ capacityBytes \}\)$/);
    for (const c of made) c.close();
  });

  it('100 recv()s waiting on idle pipes leave the event loop free and the CPU idle', async () => {
    const r = await runNode(fixture('q-idle.mjs'), ['idle']);
    expect(r.code, r.stderr).toBe(0);
    const [cpu, live, done] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    // Over 1 s: waits that kept polling would burn ~1000 ms of CPU; sleeping ones almost none.
    expect(cpu.cpuMs).toBeLessThan(250);
    // Over 300 ms: a 10 ms interval fires ~30 times and file reads keep completing.
    expect(live.ticks).toBeGreaterThan(5);
    expect(live.reads).toBeGreaterThan(5);
    expect(done.delivered).toBe(100);
  });

  it('timers and fs keep running during a busy ping-pong over a pipe', async () => {
    const r = await runNode(fixture('q-idle.mjs'), ['busy']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, number>;
    expect(out.roundTrips).toBeGreaterThanOrEqual(200);
    expect(out.ticks).toBeGreaterThan(3);
    expect(out.reads).toBeGreaterThan(3);
  });

  it("a 'fork' child that copied the write end, killed right after start(): once the parent closes its own, the reader gets EOFError (before: it waited for good), and the pipe goes with the reader's close", async () => {
    const r = await runNode(fixture('fork-killed-pipe-copy.mjs'), [], { nodeArgs: ['--single-threaded'], timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(Array(4).fill('-9 EOFError left=0'));
  });

  it("ten 'fork' children that copied the write end, all killed: once the parent closes its own, the reader gets EOFError (before: the 8-slot holder table overflowed and it waited for good)", async () => {
    const r = await runNode(fixture('fork-many-pipe-copies.mjs'), [], { nodeArgs: ['--single-threaded'], timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`10 ${Array(10).fill('-9').join(',')} EOFError`);
  });

  it('a recv asleep is woken through the wake socket; a fork child does not take its parent\'s wake-ups', async () => {
    const r = await runNode(fixture('q-wake.mjs'), [], { nodeArgs: ['--single-threaded'] }); // 'fork' needs it
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { received: number; waits: number; timeouts: number; open: boolean; got: number[]; forkedExit: number };
    expect(out.got).toEqual([0, 1, 2, 3, 4, 5]);
    expect(out.forkedExit).toBe(0);
    expect(out.open).toBe(process.platform === 'linux');
    if (process.platform === 'linux') {
      // While the fork child lived, the recvs that slept (each sleeps ~30 ms unless
      // the machine is so loaded that the reply was already there) were each ended
      // by a datagram, none by running out its 200 ms slice: a child reading the
      // inherited socket would take some of them (measured: 2-3 of 5 without the reset).
      expect(out.waits).toBeGreaterThanOrEqual(1);
      expect(out.timeouts).toBe(0);
      expect(out.received).toBeGreaterThanOrEqual(out.waits);
    }
  });

  it('a burst of wake-ups beyond the wake socket\'s queue strands no reader', async () => {
    const r = await runNode(fixture('q-burst.mjs'));
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { got: number; waits: number; timeouts: number; received: number };
    expect(out.got).toBe(50);
    if (process.platform === 'linux') {
      // The datagrams beyond the queue were lost (EAGAIN); the full queue, drained in
      // one batch, woke every waiter, so none had to run out its 200 ms slice.
      expect(out.timeouts).toBe(0);
      expect(out.received).toBeGreaterThan(0);
    }
  });

  it('an unref()d pending recv does not keep the process alive', async () => {
    const r = await runNode(fixture('q-idle.mjs'), ['unref'], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('waiting\n');
  });

  it('a pending Queue get() keeps the process alive, as in Python, unless the queue is unref()d (before: no unref() on a Queue)', async () => {
    const r = await runNode(fixture('q-idle.mjs'), ['queue-unref'], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('waiting\n');
    const kept = await runNode(fixture('q-idle.mjs'), ['queue-ref'], { timeoutMs: 1500 }).then(() => 'ended', (e: Error) => (/timed out/.test(e.message) ? 'alive' : e.message));
    expect(kept).toBe('alive');
  });
});
