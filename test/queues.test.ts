import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it, vi } from 'vitest';
import * as mp from 'multiproc';
import { readBehindStats } from '../dist/cjs/channel.js';
import { kHeaderBytes } from '../dist/cjs/layout.js';
import { collect, fixture, isLinux, runNode, segmentExists, sleep } from './helpers';
import { pattern, sha, spawnChild } from './queue-helpers';

const handle = (q: object): string => JSON.stringify(mp.toHandle(q as mp.Shareable));

describe('Queue between processes', () => {
  it('producer child -> consumer parent: 100,000 items, each exactly once, in order', async () => {
    const q = new mp.Queue<number>();
    const child = collect(spawnChild(fixture('q-producer.mjs'), [handle(q), 'ints', '100000']));
    let expected = 0;
    for (; expected < 100_000; expected++) {
      const v = await q.get();
      if (v !== expected) throw new Error(`item ${expected}: got ${v}`);
    }
    expect(expected).toBe(100_000);
    expect(q.empty()).toBe(true);
    const r = await child;
    expect(r.code, r.stderr).toBe(0);
  });

  it('putMany in a child -> getMany in the parent: 100,000 items in batches, each once, in order, at most maxItems a call', async () => {
    const q = new mp.Queue<number | string>({ capacityBytes: 64 * 1024 });
    const n = 100_000;
    const child = collect(spawnChild(fixture('q-producer.mjs'), [handle(q), 'batches', String(n), '700']));
    let expected = 0;
    let calls = 0;
    while (expected < n) {
      const max = 1 + (calls % 500);
      const got = calls % 3 === 0 ? q.getManySync(max, 10_000) : await q.getMany(max, { timeout: 10_000 });
      calls++;
      expect(got.length).toBeGreaterThan(0);
      expect(got.length).toBeLessThanOrEqual(max);
      for (const v of got) {
        const want = expected % 3 === 0 ? expected : `${expected}:${'y'.repeat(expected % 40)}`;
        if (v !== want) throw new Error(`item ${expected}: got ${String(v)}`);
        expected++;
      }
    }
    expect(expected).toBe(n);
    expect(q.getManyNowait()).toEqual([]);
    expect(q.qsize()).toBe(0);
    const r = await child;
    expect(r.code, r.stderr).toBe(0);
  });

  it('3 producers + 3 consumers: every item exactly once (counts and checksums)', async () => {
    const q = new mp.Queue({ capacityBytes: 64 * 1024 });
    const n = 20_000;
    const producers = [0, 1, 2].map((p) => collect(spawnChild(fixture('q-producer.mjs'), [handle(q), 'tagged', String(n), String(p)])));
    const consumers = [0, 1, 2].map(() => collect(spawnChild(fixture('q-consumer.mjs'), [handle(q)])));
    for (const r of await Promise.all(producers)) expect(r.code, r.stderr).toBe(0);
    q.close();
    const results = await Promise.all(consumers);
    const seen = new Set<string>();
    let count = 0;
    let checksum = 0;
    for (const r of results) {
      expect(r.code, r.stderr).toBe(0);
      const { count: c, ids } = JSON.parse(r.stdout) as { count: number; ids: string[] };
      expect(ids.length).toBe(c);
      count += c;
      // Per consumer, each producer's items arrive in increasing order.
      const last = [-1, -1, -1];
      for (const id of ids) {
        const [p, i, len] = id.split(':').map(Number);
        expect(len).toBe(i % 50);
        expect(i).toBeGreaterThan(last[p]);
        last[p] = i;
        seen.add(`${p}:${i}`);
        checksum += p * n + i;
      }
    }
    expect(count).toBe(3 * n);
    expect(seen.size).toBe(3 * n);
    const total = 3 * n;
    expect(checksum).toBe((total * (total - 1)) / 2);
  });

  it('big Buffers, typed arrays and ArrayBuffers inside items travel in segments of their own, through a queue, a pipe and a pool, and one made before a fallback to structured clone goes', async () => {
    // A prefix of this run's own (at most 8 characters): only its segments are counted.
    const r = await runNode(fixture('nested-big-views.mjs'), [], { env: { MULTIPROC_SHM_PREFIX: `tN${process.pid % 1_000_000}` }, timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    const views = (id: number) => ({ id, buf: [true, 2 << 20, id + 1, id + 1], f64: [true, 1 << 18, id + 0.5, id + 0.5], ab: [true, 1 << 20, 7], small: [id, id + 1] });
    expect(JSON.parse(r.stdout)).toEqual({ queue: [views(0), views(1), views(2)], pipe: views(5), pool: views(7), fallback: [2 << 20, 9, 2], left: {} });
  }, 70_000);

  it('4 MB and 64 MB Buffer items arrive intact', async () => {
    const q = new mp.Queue<Buffer>();
    const sizes = [4 << 20, 64 << 20, 1000];
    const child = collect(spawnChild(fixture('q-producer.mjs'), [handle(q), 'buffers', '3', sizes.join(',')]));
    const got: string[] = [];
    for (const size of sizes) {
      const b = await q.get();
      expect(Buffer.isBuffer(b)).toBe(true);
      expect(b.length).toBe(size);
      got.push(sha(b));
    }
    const r = await child;
    expect(r.code, r.stderr).toBe(0);
    expect(got).toEqual(JSON.parse(r.stdout));
    expect(got[0]).toBe(sha(pattern(4 << 20, 4 << 20)));
  });

  it('async iteration yields everything, then ends when another process closes the queue', async () => {
    const q = new mp.Queue<number>({ maxsize: 10 });
    const child = collect(spawnChild(fixture('q-producer.mjs'), [handle(q), 'close', '1000']));
    const got: number[] = [];
    for await (const v of q) got.push(v);
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(q.closed).toBe(true);
    await expect(q.get()).rejects.toBeInstanceOf(mp.QueueClosedError);
    expect((await child).code).toBe(0);
  });

  // Items of 8 bytes are committed inside the put lock, items of 1000 bytes after it (a consumer may find them still being written).
  for (const [size, drain] of [[0, 'async iteration'], [1000, 'getSync']] as const) {
    it(`close() racing puts in other processes (${size === 0 ? 'small items' : `${size}-byte items`}, ${drain}): every put that succeeded is received before the end (before: a put past its check of closed committed after the end, its item lost)`, async () => {
      const q = new mp.Queue<number | string>();
      // Each producer holds still 20 ms after its put read `closed`, under the put lock: the close lands in that window.
      const kids = [0, 1, 2].map(() => collect(spawnChild(fixture('q-close-race.mjs'), [handle(q), '20', String(size)])));
      let received = 0;
      while (received < 10) {
        await q.get({ timeout: 10_000 });
        received++;
      }
      await sleep(5); // (a put's window is open nearly all the time, but not at the hand-over of the lock)
      q.close();
      if (drain === 'async iteration') {
        for await (const _ of q) received++;
      } else {
        for (;;) {
          try {
            q.getSync(10_000);
          } catch (e) {
            expect(e).toBeInstanceOf(mp.QueueClosedError);
            break;
          }
          received++;
        }
      }
      let put = 0;
      for (const r of await Promise.all(kids)) {
        expect(r.code, r.stderr).toBe(0);
        put += (JSON.parse(r.stdout) as { ok: number }).ok;
      }
      expect(received).toBe(put);
    });
  }

  it('JoinableQueue.join waits for taskDone from a child', async () => {
    const q = new mp.JoinableQueue<number>();
    for (let i = 0; i < 20; i++) await q.put(i);
    expect(q.unfinishedTasks).toBe(20);
    let childDone = false;
    const child = spawnChild(fixture('q-joinable.mjs'), [handle(q), '20']);
    child.stdout!.on('data', () => (childDone = true));
    const res = collect(child);
    await q.join();
    expect(q.unfinishedTasks).toBe(0);
    expect(q.empty()).toBe(true);
    const r = await res;
    expect(r.code, r.stderr).toBe(0);
    expect(childDone || r.stdout.includes('done')).toBe(true);
    expect(() => q.taskDone()).toThrow(RangeError);
  });

  it('producers SIGKILLed mid-stream (many times, under load) leave the queue usable and every committed item readable', async () => {
    const q = new mp.Queue<{ pid: number; i: number; pad: string; sum: number }>({ capacityBytes: 256 * 1024 });
    const next = new Map<number, number>();
    let received = 0;
    const check = (v: { pid: number; i: number; pad: string; sum: number }): void => {
      expect(v.sum).toBe(v.pid + v.i + v.pad.length);
      expect(v.i).toBe(next.get(v.pid) ?? 0); // contiguous per producer: nothing lost but the last, nothing twice
      next.set(v.pid, v.i + 1);
      received++;
    };
    for (let round = 0; round < 6; round++) {
      const kids = ['forever', 'forever-many'].map((mode) => spawnChild(fixture('q-producer.mjs'), [handle(q), mode, '0']));
      const done = kids.map((k) => collect(k));
      // Consume while they produce, then kill them at a point they do not expect.
      // (at least 40 items a round: a slow start under load must not make the test vacuous)
      const until = Date.now() + 150 + round * 40;
      for (let got = 0; Date.now() < until || got < 40; got++) {
        const v = await q.get({ timeout: 5000 });
        check(v);
      }
      for (const k of kids) k.kill('SIGKILL');
      for (const r of await Promise.all(done)) expect(r.signal).toBe('SIGKILL');
      // Drain with a bounded get, not getNowait: a record a killed producer left
      // uncommitted is skipped once its pid is known dead, and liveness is
      // trusted for kTrustMs (200 ms) after the pid was last seen alive.
      for (;;) {
        let v;
        try {
          v = await q.get({ timeout: 600 });
        } catch (e) {
          expect(e).toBeInstanceOf(mp.TimeoutError);
          break;
        }
        check(v);
      }
      expect(q.qsize()).toBe(0);
    }
    expect(received).toBeGreaterThan(100);
    // Still a working queue.
    for (let i = 0; i < 100; i++) await q.put({ pid: 0, i, pad: '', sum: i });
    next.set(0, 0);
    for (let i = 0; i < 100; i++) check(await q.get());
  });

  for (const where of ['reserved', 'putlock', 'getlock', 'reserving', 'padreserved', 'counted', 'run', 'lockcommit']) {
    it(`a process SIGKILLed at a known point (${where}) does not wedge the queue; committed items stay readable`, async () => {
      const q = new mp.Queue<string>({ capacityBytes: 4096 });
      // padreserved: bring tail near the end of the ring, so the child's reservation pads.
      if (where === 'padreserved') for (let i = 0; i < 30; i++) {
        await q.put('f'.repeat(90));
        await q.get();
      }
      await q.put('before');
      const r = await collect(spawnChild(fixture('q-crash.mjs'), [handle(q), where]));
      expect(r.signal).toBe('SIGKILL');
      expect(r.stdout).toContain('armed');
      expect(await q.get({ timeout: 5000 })).toBe('before');
      // A putMany run: what was committed is read, the rest is skipped once its writer is known dead.
      if (where === 'run') expect(await q.get({ timeout: 5000 })).toBe('run0');
      // A small put commits inside the put lock: its record is whole, and read, though its writer died holding the lock.
      if (where === 'lockcommit') expect(await q.get({ timeout: 5000 })).toBe('held');
      // A consumer meets what the dead one left (an unfinished reservation at tail must read as empty)...
      expect(() => q.getNowait()).toThrow(mp.QueueEmptyError);
      // ...and so does the next producer.
      await q.put('after', { timeout: 5000 });
      expect(await q.get({ timeout: 5000 })).toBe('after');
      expect(() => q.getNowait()).toThrow(mp.QueueEmptyError);
      expect(q.qsize()).toBe(0);
      await q.put('counted');
      expect(q.qsize()).toBe(1); // the counts agree with the records (counted: repaired by the lock takeover)
      expect(await q.get()).toBe('counted');
      // Many laps later the ring is still sound.
      for (let i = 0; i < 500; i++) {
        await q.put(`x${i}`.repeat(20));
        expect(await q.get()).toBe(`x${i}`.repeat(20));
      }
    });
  }

  it.runIf(isLinux)('worker threads ended by terminate() in the middle of puts and gets leave the queue usable (before: the lock or record they left named the live process, and the queue waited until the timeout, within a few rounds)', async () => {
    const r = await runNode(fixture('queue-thread-terminate.mjs'), ['150'], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { rounds: number; stuck: number; got: number; bad: number };
    expect(out).toMatchObject({ rounds: 150, stuck: 0, bad: 0 });
    expect(out.got).toBeGreaterThan(150); // the threads' items too, not only the marks
    expect(r.stderr).not.toMatch(/worker error/);
  }, 100_000); // (runNode's 90 s, not vitest's 60 s test timeout, bounds it)

  // unshare -Urpf without --mount-proc: a pid namespace whose /proc is the outer one (a user namespace: no privilege needed where the kernel allows them).
  const canUnshare = isLinux && spawnSync('unshare', ['-Urpf', 'true'], { stdio: 'ignore' }).status === 0;
  it.runIf(canUnshare)("a worker thread in a pid namespace whose /proc is not its own: the main thread of its process still sees it alive and waits for the lock it holds (before: /proc/thread-self's outer id looked dead, and the main thread took the worker's lock: items taken twice, or 'ring buffer corrupted')", async () => {
    const child = spawn('unshare', ['-Urpf', process.execPath, fixture('queue-thread-pidns.mjs'), '20000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await collect(child, 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ pid: 1, seenDead: false, dup: 0, missing: 0, errors: [] });
  });

  it('a queue travels as an item of another queue', async () => {
    const outer = new mp.Queue<mp.Queue<number>>();
    const inner = new mp.Queue<number>();
    await inner.put(42);
    await outer.put(inner);
    const again = await outer.get();
    expect(again).toBeInstanceOf(mp.Queue); // the same shared queue, attached again
    expect(await again.get()).toBe(42);
    const results = new mp.Queue<number>();
    // Through a child: it receives a handle inside an item and uses it.
    await outer.put(inner);
    const child = collect(spawnChild(fixture('q-producer.mjs'), [handle(outer), 'echo', '1', handle(results)]));
    const q2 = await results.get();
    expect(q2).toBeInstanceOf(mp.Queue);
    await inner.put(7);
    expect(await q2.get()).toBe(7); // the same shared queue
    expect((await child).code).toBe(0);
  });
});

describe('Queue in one process', () => {
  const segmentOf = (q: object): string => (q as { ring: { segmentName: string } }).ring.segmentName;

  it('a queue closed and drained gives back this process\'s mapping at once (before: its segment stayed until a GC, 1 MiB of /dev/shm per queue)', async () => {
    // Closed when empty.
    const a = new mp.Queue<number>();
    const aName = segmentOf(a);
    await a.put(1);
    expect(await a.get()).toBe(1);
    a.close();
    expect(await segmentExists(aName)).toBe(false);
    expect([a.closed, a.qsize(), a.empty(), a.full(), a.maxsize, a.capacityBytes]).toEqual([true, 0, true, false, 0, 1 << 20]);
    await expect(a.put(2)).rejects.toThrow(mp.QueueClosedError);
    await expect(a.get()).rejects.toThrow('The queue is closed');
    expect(() => a.getNowait()).toThrow(mp.QueueClosedError);
    a.close(); // idempotent
    // It still travels (a Pool re-sends its initargs to each new worker): as a closed, drained queue.
    const sent = mp.fromHandle(JSON.parse(JSON.stringify(mp.toHandle(a)))) as mp.Queue<number>;
    expect(sent.closed).toBe(true);
    await expect(sent.get()).rejects.toThrow(mp.QueueClosedError);
    await expect(sent.put(1)).rejects.toThrow(mp.QueueClosedError);

    // Closed with items in it: kept until this process has drained them.
    const b = new mp.Queue<number>();
    const bName = segmentOf(b);
    await b.putMany([1, 2]);
    b.close();
    expect(await segmentExists(bName)).toBe(true);
    const got: number[] = [];
    for await (const x of b) got.push(x);
    expect(got).toEqual([1, 2]);
    await sleep(0);
    expect(await segmentExists(bName)).toBe(false);

    // A JoinableQueue: kept until its last task is done, then join() has nothing to wait for.
    const j = new mp.JoinableQueue<number>();
    const jName = segmentOf(j);
    await j.put(1);
    expect(await j.get()).toBe(1);
    j.close();
    expect(await segmentExists(jName)).toBe(true);
    const joined = j.join();
    j.taskDone();
    await joined;
    expect(await segmentExists(jName)).toBe(false);
    expect(j.unfinishedTasks).toBe(0);
    expect(j.joinSync(0)).toBe(true);
    expect(() => j.taskDone()).toThrow(RangeError);

    // Another holder keeps the queue: only this process's mapping goes.
    const c = new mp.Queue<number>();
    const cName = segmentOf(c);
    const other = mp.fromHandle(mp.toHandle(c)) as mp.Queue<number>;
    c.close();
    expect(await segmentExists(cName)).toBe(true);
    expect(other.closed).toBe(true);
    await expect(other.get()).rejects.toThrow(mp.QueueClosedError);
    await sleep(0);
    expect(await segmentExists(cName)).toBe(false);
  });

  it('after [Symbol.dispose]() every call is a QueueClosedError that says so (before: TypeError: Cannot perform Atomics.load on a detached ArrayBuffer)', async () => {
    const q = new mp.JoinableQueue<number>();
    q[Symbol.dispose]();
    const calls: (() => unknown)[] = [() => q.putSync(1), () => q.putNowait(1), () => q.getSync(), () => q.getNowait(), () => q.getManyNowait(),
      () => q.qsize(), () => q.empty(), () => q.full(), () => q.taskDone(), () => q.unfinishedTasks, () => q.joinSync(0), () => mp.toHandle(q)];
    for (const call of calls) expect(call).toThrow(mp.QueueClosedError);
    for (const call of [() => q.put(1), () => q.get(), () => q.getMany(), () => q.putMany([1]), () => q.join()]) {
      await expect(call()).rejects.toThrow(/disposed in this process/);
    }
    expect(q.closed).toBe(true);
    expect(() => q.close()).toThrow(/disposed in this process/); // it cannot close the queue for the others any more
    q[Symbol.dispose](); // once is enough
  });
  it('disposing a Queue object ends its waiting get() with QueueClosedError and its async iteration quietly', async () => {
    const q = new mp.Queue();
    const other = mp.fromHandle(mp.toHandle(q)) as mp.Queue; // another user of the same queue
    const get = q.get().then(() => 'resolved', (e: unknown) => e);
    const iterated = (async () => {
      let n = 0;
      for await (const _ of q) n++;
      return n;
    })();
    await sleep(20);
    q[Symbol.dispose]();
    const err = await get;
    expect(err).toBeInstanceOf(mp.QueueClosedError);
    expect((err as Error).message).toMatch(/disposed in this process/);
    expect(await iterated).toBe(0);
    await other.put('still open'); // the queue itself lives on
    expect(await other.get()).toBe('still open');
    other.close();
    other[Symbol.dispose]();
  });

  /**
   * Writes by hand the state a producer leaves when it is SIGKILLed holding
   * the put lock, just after reserving one 8-byte record at position 0 (it
   * journaled the tail it started from and the count it would publish, and
   * moved tail; the record says -pid): `counted` says whether it stored
   * putCount before it died. Word offsets: the header (kHeaderBytes), the ring's
   * control block (6 x 64 bytes), then the data area.
   */
  function leaveDeadProducer(q: mp.Queue<number>, counted: boolean): void {
    const dead = spawnSync('true').pid!; // a pid that has exited
    const raw = mp.SharedMemory.attach((mp.toHandle(q) as unknown as { name: string }).name);
    const w = new Int32Array(raw.buffer);
    const ctl = kHeaderBytes / 4;
    const data = (kHeaderBytes + 6 * 64) / 4;
    w[data] = -dead; // state: being written by `dead`
    w[data + 1] = 8; // payload bytes: the record spans 16 bytes
    w[ctl + 4] = 0; // journal: the tail it started from...
    w[ctl + 5] = 1; // ...and the count it would publish
    if (counted) w[ctl + 1] = 1; // putCount
    Atomics.store(w, ctl + 0, 16); // tail: past the record
    Atomics.store(w, ctl + 2, dead); // the put lock, still held by the dead producer
    raw.close();
  }

  it('JoinableQueue: a producer killed holding the put lock, after counting its record, leaves the unfinished count right', () => {
    const q = new mp.JoinableQueue<number>();
    leaveDeadProducer(q, true);
    q.putSync(5, 2000); // takes the lock over from the dead producer
    expect(q.getSync(1000)).toBe(5); // the dead producer's record is skipped, and counted done
    expect(q.unfinishedTasks).toBe(1); // only the 5 is unfinished
    q.taskDone();
    expect(q.unfinishedTasks).toBe(0);
    expect(q.joinSync(1000)).toBe(true);
    expect(() => q.taskDone()).toThrow(RangeError);
    q.close();
  });

  it('JoinableQueue: a producer killed before counting its record, met first by a consumer, leaves the count right', () => {
    // The consumer reaches the record before any producer takes the lock
    // over: it must count the record (the journal) before it marks it done.
    const q = new mp.JoinableQueue<number>();
    leaveDeadProducer(q, false);
    expect(() => q.getNowait()).toThrow(mp.QueueEmptyError); // the record is skipped: nothing to get
    expect(q.unfinishedTasks).toBe(0);
    expect(q.qsize()).toBe(0); // putCount repaired before getCount counted the skip
    q.putSync(6, 2000);
    expect(q.getSync(1000)).toBe(6);
    q.taskDone();
    expect(q.joinSync(1000)).toBe(true);
    q.close();
  });

  it('a consumer killed between moving head and counting its take leaves qsize() and maxsize right (the get journal)', async () => {
    // The kill is placed at an Atomics.store: on x86 the ring makes those stores plain unless told (ring-buffer.ts kStoresInOrder).
    const r = await runNode(fixture('queue-consumer-kill.mjs'), [], { timeoutMs: 30_000, env: { MULTIPROC_RING_ATOMIC: '1' } });
    expect(r.stderr).toBe('');
    // Before: qsize 2 with one item left, full() true, putNowait threw QueueFullError (maxsize 1: full while empty, for good).
    expect(JSON.parse(r.stdout)).toEqual({ victim: -9, qsize: 1, full: false, putNowait: 'ok', rest: ['b', 'c'], after: 0 });
  });

  it('JoinableQueue: a consumer killed while skipping a dead producer\'s record does not leave join() waiting (the skip is journaled)', async () => {
    // The kill is placed at an Atomics.store: on x86 the ring makes those stores plain unless told (ring-buffer.ts kStoresInOrder).
    const r = await runNode(fixture('joinable-skip-kill.mjs'), [], { timeoutMs: 30_000, env: { MULTIPROC_RING_ATOMIC: '1' } });
    expect(r.stderr).toBe('');
    // Before: joined false, unfinished 1 for good, and one taskDone() too many was accepted.
    expect(JSON.parse(r.stdout)).toEqual({ producer: -9, unfinishedBefore: 1, consumer: -9, joined: true, unfinished: 0, next: 'next', joinedAgain: true, extraTaskDone: 'RangeError' });
  });

  it('putNowait() while another producer is stopped holding the put lock throws QueueFullError instead of blocking the thread', async () => {
    const r = await runNode(fixture('queue-putnowait-stopped.mjs'), [], { timeoutMs: 30_000 });
    expect(r.stderr).toBe(''); // before: the fixture hung in putNowait, its timers with it
    expect(JSON.parse(r.stdout)).toEqual({
      held: true,
      putNowait: 'QueueFullError: The queue could not take the item without waiting: another producer (process N) has held its put lock for 50 ms (stopped or descheduled?)',
      ticked: true,
      afterKill: 'z',
    });
  });

  it('a put lock left to a pid that now belongs to an unrelated program (a recycled pid) is taken over', async () => {
    const q = new mp.Queue<number>();
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const raw = mp.SharedMemory.attach((mp.toHandle(q) as unknown as { name: string }).name);
      // The ring's put lock word: control block at the payload (after the header), word 2.
      Atomics.store(new Int32Array(raw.buffer), kHeaderBytes / 4 + 2, other.pid!);
      raw.close();
      if (process.platform === 'linux') {
        q.putSync(7, 2000); // that pid does not map the queue: not a producer, the lock is taken over
        expect(q.getSync(1000)).toBe(7);
      } else {
        expect(() => q.putSync(7, 500)).toThrow(mp.TimeoutError); // documented limit elsewhere
      }
    } finally {
      other.kill('SIGKILL');
      q.close();
    }
  });

  it('a producer that puts rarely sees a full ring as full after 4 GiB went through it (its cached head is not trusted)', async () => {
    // 8179-byte Buffers make 8192-byte records: 8 per 64 KiB lap, 7 fit.
    const q = new mp.Queue<Buffer>({ capacityBytes: 65536 });
    const [mine, theirs] = mp.Pipe();
    const child = collect(spawnChild(fixture('q-rare-producer.mjs'), [handle(q), handle(theirs)]));
    theirs.close();
    try {
      expect(await mine.recv()).toBe('ready'); // it has attached, and read head
      const item = Buffer.alloc(8179, 1);
      for (let i = 0; i < 2 ** 32 / 8192 - 3; i++) {
        q.putSync(item);
        q.getSync();
      }
      for (let i = 0; i < 7; i++) q.putSync(Buffer.alloc(8179, 10 + i));
      expect(() => q.putNowait(item)).toThrow(mp.QueueFullError);
      await mine.send('go');
      // Before, it found room that was not there and overwrote the oldest
      // record's state word: the queue read empty while holding 8 items.
      expect(await mine.recv()).toBe('TimeoutError');
      expect(q.qsize()).toBe(7);
      for (let i = 0; i < 7; i++) expect(q.getSync(1000)[0]).toBe(10 + i);
      await mine.send('go');
      expect(await mine.recv()).toBe('ok');
      expect(q.getSync(1000)[0]).toBe(0xee);
    } finally {
      mine.close();
    }
    expect((await child).code).toBe(0);
    q.close();
  });

  it('an uncloneable item is a TypeError and the queue is unchanged', async () => {
    const q = new mp.Queue();
    await q.put(1);
    await expect(q.put(() => 1)).rejects.toBeInstanceOf(TypeError);
    await expect(q.put({ a: [1, Symbol('x')] })).rejects.toBeInstanceOf(TypeError);
    expect(() => q.putNowait({ f() {} })).toThrow(TypeError);
    expect(() => q.putSync(Symbol('s'))).toThrow(TypeError);
    // A SharedArrayBuffer, or a view of one, anywhere in the item: a copy would silently stop sharing (a view
    // over one was copied before; a bare one failed with structured clone's "could not be cloned").
    const sab = new SharedArrayBuffer(16);
    for (const item of [sab, new Int32Array(sab), Buffer.from(sab), { a: [new Uint8Array(sab)] }, [new Map(), new Int32Array(sab)]]) {
      expect(() => q.putSync(item)).toThrow(/SharedArrayBuffer .*is shared only between the threads of one process.*SharedMemory.create/);
    }
    expect(q.qsize()).toBe(1);
    expect(await q.get()).toBe(1);
    expect(q.empty()).toBe(true);
  });

  it('putMany: a Buffer detached by a later item\'s getter is a TypeError and the queue is unchanged (no record left half-written)', async () => {
    const q = new mp.Queue();
    const u8 = new Uint8Array(100).fill(1);
    const evil = { get x() { structuredClone(u8.buffer, { transfer: [u8.buffer] }); return 1; } };
    expect(() => q.putManySync([u8, evil])).toThrow(/item 0: its buffer was detached/);
    const u8b = new Uint8Array(100).fill(2);
    const evilB = { get x() { structuredClone(u8b.buffer, { transfer: [u8b.buffer] }); return 1; } };
    await expect(q.putMany(['a', u8b, evilB])).rejects.toBeInstanceOf(TypeError);
    expect(q.qsize()).toBe(0);
    q.putSync('after');
    expect(q.getSync(1000)).toBe('after');
    q.close();
  });

  it('putMany / getMany: uncloneable item, timeouts with itemsPut, maxsize, closed queues, mixed items', async () => {
    const q = new mp.Queue<unknown>(5);
    // Every item is encoded before any is put: a bad one changes nothing, and its index is named.
    await expect(q.putMany([1, 2, () => 3])).rejects.toThrow(/putMany: item 2: .*not structured-cloneable/);
    expect(() => q.putManySync([1, Symbol('s')])).toThrow(TypeError);
    expect(q.qsize()).toBe(0);
    await expect(q.putMany(42 as unknown as unknown[])).rejects.toThrow(/iterable/);
    await expect(q.getMany(0)).rejects.toThrow(RangeError);
    expect(() => q.getManySync(1.5)).toThrow(TypeError);
    // maxsize 5: a batch of 8 fills the queue, then times out saying how many went in.
    const err = await q.putMany([0, 1, 2, 3, 4, 5, 6, 7], { timeout: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(mp.TimeoutError);
    expect((err as { itemsPut?: number }).itemsPut).toBe(5);
    expect(q.qsize()).toBe(5);
    expect(() => q.putManySync([9], 20)).toThrow(mp.TimeoutError);
    expect(q.getManyNowait(2)).toEqual([0, 1]);
    expect(await q.getMany()).toEqual([2, 3, 4]);
    await expect(q.getMany(10, { timeout: 30 })).rejects.toThrow(mp.TimeoutError);
    expect(q.getManyNowait()).toEqual([]);
    // A batch larger than the room resumes as a consumer frees it, in order.
    const big = Array.from({ length: 23 }, (_, i) => i);
    const putting = q.putMany(big);
    const got: unknown[] = [];
    while (got.length < big.length) got.push(...(await q.getMany(4)));
    await putting;
    expect(got).toEqual(big);
    // Mixed items: Buffers, an item bigger than the ring (its own segment), shared objects, a Map (v8 fallback).
    const r = new mp.Queue<unknown>({ capacityBytes: 64 * 1024 });
    const v = new mp.Value('i', 7);
    const large = Buffer.alloc(100_000, 3);
    await r.putMany([Buffer.from('abc'), large, { v }, new Map([[1, 'one']]), 'end']);
    const [b1, b2, o, m, end] = await r.getMany();
    expect(Buffer.from(b1 as Buffer).toString()).toBe('abc');
    expect(Buffer.compare(b2 as Buffer, large)).toBe(0);
    const v2 = (o as { v: mp.Value<number> }).v;
    v2.value = 9;
    expect(v.value).toBe(9);
    expect(m).toEqual(new Map([[1, 'one']]));
    expect(end).toBe('end');
    // Closed: putMany rejects, getMany drains then rejects, getManyNowait likewise.
    await r.putMany(['a', 'b']);
    r.close();
    await expect(r.putMany(['c'])).rejects.toThrow(mp.QueueClosedError);
    expect(r.getManyNowait(1)).toEqual(['a']);
    expect(await r.getMany()).toEqual(['b']);
    await expect(r.getMany()).rejects.toThrow(mp.QueueClosedError);
    expect(() => r.getManyNowait()).toThrow(mp.QueueClosedError);
    // JoinableQueue counts every item of a batch.
    const j = new mp.JoinableQueue<number>();
    await j.putMany([1, 2, 3]);
    expect(j.unfinishedTasks).toBe(3);
    expect(await j.getMany()).toEqual([1, 2, 3]);
    for (let i = 0; i < 3; i++) j.taskDone();
    await j.join();
    // SimpleQueue has them too.
    const s = new mp.SimpleQueue<number>();
    s.putManySync([1, 2]);
    await s.putMany([3]);
    expect(s.getManySync()).toEqual([1, 2, 3]);
    for (const x of [q, r, j, s]) x.close();
  });

  it('getMany: records that fail to decode mid-batch are each reported once, in order, and nothing else is lost', async () => {
    const q = new mp.Queue<string>();
    const ring = (q as unknown as { ring: { tryReserve(n: number): number; commit(): void; buffer: ArrayBuffer; dataOffset: number } }).ring;
    const corrupt = (): void => {
      // A committed record whose tag byte no codec knows (what a buggy writer could leave).
      const off = ring.tryReserve(1);
      new Uint8Array(ring.buffer, ring.dataOffset + off, 1)[0] = 0xee;
      ring.commit();
    };
    await q.put('a');
    corrupt();
    await q.put('c');
    corrupt();
    await q.put('e');
    // Queued before anything is read, as concurrent callers would be.
    const calls = [q.getMany(), q.getMany(), q.getMany(), q.getMany(), q.getMany()];
    const results = await Promise.allSettled(calls);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message.replace(/ at .*/, '')))).toEqual([
      ['a'],
      'multiproc codec: unknown tag 0xee',
      ['c'],
      'multiproc codec: unknown tag 0xee',
      ['e'],
    ]);
    expect(q.getManyNowait()).toEqual([]);
    q.close();
  });

  it('a waiting put keeps its own copy of a Buffer (the caller may transfer it); a put from a getter is refused', async () => {
    const q = new mp.Queue<Uint8Array | { x: number }>(1);
    await q.put(new Uint8Array([0]));
    const ab = new ArrayBuffer(8);
    new Uint8Array(ab).fill(7);
    const waiting = q.put(new Uint8Array(ab)); // full: waits, holding the item
    const batch = q.putMany([Buffer.from('b1'), new Uint8Array(ab, 0, 4)]);
    structuredClone(ab, { transfer: [ab] }); // detaches the caller's buffer
    expect(ab.byteLength).toBe(0);
    expect([...(await q.get() as Uint8Array)]).toEqual([0]);
    expect([...(await q.get() as Uint8Array)]).toEqual([7, 7, 7, 7, 7, 7, 7, 7]);
    await waiting;
    expect(Buffer.from(await q.get() as Uint8Array).toString()).toBe('b1');
    expect([...(await q.get() as Uint8Array)]).toEqual([7, 7, 7, 7]);
    await batch;
    // A getter that puts while its own item is being encoded.
    const other = new mp.Queue<number>();
    const sneaky = { get x(): number {
      other.putSync(1);
      return 1;
    } };
    await expect(q.put(sneaky)).rejects.toThrow(/inside a getter/);
    expect(other.qsize()).toBe(0);
    expect(q.qsize()).toBe(0);
    await q.put({ x: 2 });
    expect(await q.get()).toEqual({ x: 2 });
    q.close();
    other.close();
  });

  it('close: puts fail, gets drain then fail, a blocked get is released', async () => {
    const q = new mp.Queue<number>();
    await q.put(1);
    await q.put(2);
    const blocked = new mp.Queue<number>();
    const pending = blocked.get();
    q.close();
    await expect(q.put(3)).rejects.toBeInstanceOf(mp.QueueClosedError);
    expect(() => q.putNowait(3)).toThrow(mp.QueueClosedError);
    expect(await q.get()).toBe(1);
    expect(q.getSync()).toBe(2);
    await expect(q.get()).rejects.toBeInstanceOf(mp.QueueClosedError);
    expect(() => q.getNowait()).toThrow(mp.QueueClosedError);
    blocked.close();
    await expect(pending).rejects.toBeInstanceOf(mp.QueueClosedError);
  });

  it('non-blocking forms, timeouts and AbortSignal', async () => {
    const q = new mp.Queue<string>(2);
    expect(q.maxsize).toBe(2);
    expect(() => q.getNowait()).toThrow(mp.QueueEmptyError);
    q.putNowait('a');
    await q.put('b');
    expect(q.full()).toBe(true);
    expect(q.qsize()).toBe(2);
    expect(() => q.putNowait('c')).toThrow(mp.QueueFullError);
    await expect(q.put('c', { timeout: 30 })).rejects.toBeInstanceOf(mp.TimeoutError);
    expect(() => q.putSync('c', 20)).toThrow(mp.TimeoutError);
    const ac = new AbortController();
    const p = q.put('c', { signal: ac.signal });
    const reason = new Error('stop');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    expect(q.qsize()).toBe(2);
    expect(q.getNowait()).toBe('a');
    expect(q.getSync()).toBe('b');
    await expect(q.get({ timeout: 30 })).rejects.toBeInstanceOf(mp.TimeoutError);
    expect(() => q.getSync(10)).toThrow(mp.TimeoutError);
    const ac2 = new AbortController();
    const g = q.get({ signal: ac2.signal });
    ac2.abort();
    await expect(g).rejects.toBe(ac2.signal.reason);
    await q.put('d');
    expect(await q.get()).toBe('d');
    // A number is the timeout, as in event.wait(ms) and p.join(ms) (before: a TypeError).
    await expect(q.get(30)).rejects.toBeInstanceOf(mp.TimeoutError);
    await q.put('e', 30);
    await q.put('f', 30);
    await expect(q.put('g', 30)).rejects.toBeInstanceOf(mp.TimeoutError);
    expect(await q.getMany(5, 30)).toEqual(['e', 'f']);
    await expect(q.get('30' as never)).rejects.toThrow('Queue.get() takes a timeout in milliseconds or { timeout?, signal? }, got "30"');
    q.close();
  });

  it('a put waiting for room resumes when a get frees it; puts keep their order', async () => {
    const q = new mp.Queue<number>(1);
    await q.put(0);
    const puts = [q.put(1), q.put(2), q.put(3)];
    const got: number[] = [];
    for (let i = 0; i < 4; i++) got.push(await q.get());
    await Promise.all(puts);
    expect(got).toEqual([0, 1, 2, 3]);
  });

  it('one process\'s calls keep their order when one ends early, and a timeout holds while an earlier call waits', async () => {
    const tick = () => new Promise((r) => setImmediate(r));
    // An aborted put queued behind a waiting one does not let a later put overtake it.
    const q = new mp.Queue<string>({ maxsize: 1 });
    q.putSync('x');
    const pa = q.put('a');
    const ac = new AbortController();
    const pb = q.put('b', { signal: ac.signal });
    ac.abort();
    await expect(pb).rejects.toBe(ac.signal.reason);
    await tick();
    expect(q.getSync()).toBe('x');
    // A nowait put behind a waiting one finds the queue full: 'a' goes first.
    expect(() => q.putNowait('n')).toThrow(/an earlier put of this process is waiting/);
    // So does a blocking put: it would go first, the waiting put needing this event loop (before: x, n, a; review helper-99).
    expect(() => q.putSync('n')).toThrow(mp.QueueFullError);
    expect(() => q.putManySync(['n', 'm'])).toThrow(/An earlier put\(\) of this process is still waiting \(for room, or for the queue's lock, held by another process\), and putManySync\(\) would overtake it/);
    expect(q.qsize()).toBe(0);
    const pc = q.put('c');
    await Promise.race([pa, pc]);
    expect(q.getSync(1000)).toBe('a');
    await Promise.all([pa, pc]);
    expect(q.getSync(1000)).toBe('c');
    // A put with a timeout behind one that waits for good times out.
    q.putSync('y');
    const stuck = q.put('s');
    const t0 = performance.now();
    await expect(q.put('t', { timeout: 100 })).rejects.toThrow(mp.TimeoutError);
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(q.getSync()).toBe('y');
    await stuck;
    expect(q.getSync()).toBe('s');
    // Gets: an aborted get does not let a later one take the item an earlier one waits for.
    const order: string[] = [];
    const g1 = q.get().then((v) => order.push(`g1:${v}`));
    const ac2 = new AbortController();
    const g2 = q.get({ signal: ac2.signal });
    ac2.abort();
    await expect(g2).rejects.toBe(ac2.signal.reason);
    await tick();
    const g3 = q.get().then((v) => order.push(`g3:${v}`));
    expect(() => q.getNowait()).toThrow(mp.QueueEmptyError);
    // A get with a timeout behind a waiting one times out (before, it waited as long as that one).
    await expect(q.get({ timeout: 100 })).rejects.toThrow(mp.TimeoutError);
    q.putSync('1');
    // One of the waiting gets takes it, through this event loop (its waiter thread's wake-up): wait for that,
    // bounded, before the next put, which finds the queue (maxsize 1) full until then. (A fixed 30 ms here:
    // a loaded full run saw putSync('2') throw QueueFullError.)
    for (const t0 = performance.now(); order.length === 0 && performance.now() - t0 < 10_000;) await sleep(5);
    q.putSync('2');
    await Promise.all([g1, g3]);
    expect(order).toEqual(['g1:1', 'g3:2']);
    q.close();
  });

  it('bad constructor arguments: RangeError / TypeError', () => {
    expect(() => new mp.Queue(-1)).toThrow(RangeError);
    expect(() => new mp.Queue(2 ** 31)).toThrow(RangeError);
    expect(() => new mp.Queue(1.5)).toThrow(TypeError);
    expect(() => new mp.Queue({ capacityBytes: 100 })).toThrow(RangeError);
    expect(() => new mp.Queue({ capacityBytes: 2 ** 31 })).toThrow(RangeError);
    expect(() => new mp.Queue({ maxsize: -5 })).toThrow(RangeError);
    expect(() => new mp.Queue('x' as unknown as number)).toThrow(TypeError);
    expect(new mp.Queue({ capacityBytes: 5000 }).capacityBytes).toBe(8192);
  });

  it('a misspelled option is a TypeError naming the closest name (before: ignored, and { timout } waited without limit)', async () => {
    const bad = (o: object): never => o as never;
    // A wait that still runs after 2 s was given no limit: fail instead of hanging.
    const soon = <T>(p: Promise<T>): Promise<T> => Promise.race([p, sleep(2000).then((): never => { throw new Error('still waiting after 2 s'); })]);
    expect(() => new mp.Queue(bad({ maxsise: 1 }))).toThrow('Unknown option "maxsise" for Queue() (did you mean "maxsize"?)');
    expect(() => new mp.JoinableQueue(bad({ capacity: 4096 }))).toThrow('Unknown option "capacity" for JoinableQueue(); the options are "maxsize", "capacityBytes"');
    expect(() => new mp.SimpleQueue(bad({ capacityByte: 4096 }))).toThrow('Unknown option "capacityByte" for SimpleQueue() (did you mean "capacityBytes"?)');
    const q = new mp.JoinableQueue<number>();
    await expect(soon(q.get(bad({ timout: 100 })))).rejects.toThrow('Unknown option "timout" for Queue.get() (did you mean "timeout"?)');
    await expect(soon(q.getMany(2, bad({ Timeout: 100 })))).rejects.toThrow('Unknown option "Timeout" for Queue.getMany() (did you mean "timeout"?)');
    await expect(q.put(1, bad({ timout: 5 }))).rejects.toThrow('Unknown option "timout" for Queue.put() (did you mean "timeout"?)');
    await expect(q.putMany([1, 2], bad({ signl: undefined }))).rejects.toThrow('Unknown option "signl" for Queue.putMany() (did you mean "signal"?)');
    expect(q.qsize()).toBe(0); // nothing was put
    q.putNowait(1);
    await expect(soon(q.join(bad({ wait: 100 })))).rejects.toThrow('Unknown option "wait" for JoinableQueue.join(); the options are "timeout", "signal"');
    // A valid name left undefined is "not given".
    expect(await q.get({ timeout: 100, signal: undefined })).toBe(1);
    q.close();
  });

  it('items bigger than the ring go in their own segment', async () => {
    const q = new mp.Queue<unknown>({ capacityBytes: 4096 });
    const big = { s: 'z'.repeat(100_000), arr: Array.from({ length: 5000 }, (_, i) => i) };
    const f64 = new Float64Array(100_000).map((_, i) => i / 3);
    await q.put(big);
    await q.put(f64);
    expect(await q.get()).toEqual(big);
    const back = (await q.get()) as Float64Array;
    expect(back).toBeInstanceOf(Float64Array);
    expect(back).toEqual(f64);
  });

  it('an item with a cycle that also holds a shared object round-trips (the cycle points at the copy)', async () => {
    const q = new mp.Queue<unknown>();
    const v = mp.Value('i', 7);
    const obj: Record<string, unknown> = { v, when: new Date(0) };
    obj.self = obj;
    const m = new Map<string, unknown>([['v', v]]);
    m.set('me', m);
    const arr: unknown[] = [v];
    arr.push(arr, { back: arr });
    for (const item of [obj, m, arr]) await q.put(item);
    const o = (await q.get()) as typeof obj;
    expect(o.self).toBe(o);
    expect((o.v as typeof v).value).toBe(7);
    expect(o.when).toEqual(new Date(0));
    const m2 = (await q.get()) as typeof m;
    expect(m2.get('me')).toBe(m2);
    (m2.get('v') as typeof v).value = 8;
    expect(v.value).toBe(8); // the same shared memory
    const a2 = (await q.get()) as unknown[];
    expect(a2[1]).toBe(a2);
    expect((a2[2] as { back: unknown }).back).toBe(a2);
    expect((a2[0] as typeof v).value).toBe(8);
    q.close();
  });

  it('a plain object with a property named like a handle\'s tag stays a plain object next to shared objects', async () => {
    const q = new mp.Queue<unknown>();
    const v = mp.Value('i', 5);
    const mine = { __multiproc__: 'label', n: 1 };
    const alsoMine = { __multiproc_escaped__: { x: 1 }, y: 2 };
    const item = { v, mine, again: mine, alsoMine, m: new Map([['k', mine]]) }; // the Map: the structured clone path
    await q.put(item);
    const got = (await q.get()) as typeof item;
    expect((got.v as typeof v).value).toBe(5);
    expect(got.mine).toEqual({ __multiproc__: 'label', n: 1 }); // before: the get threw "Unknown multiproc handle kind 'label'"
    expect(got.again).toBe(got.mine);
    expect(got.m.get('k')).toBe(got.mine);
    expect(got.alsoMine).toEqual(alsoMine);
    // Process args go the same way.
    const out = mp.RawArray('i', 1);
    const p = new mp.Process({ target: (o: { __multiproc__: string; n: number }, a: mp.SharedArray<'i'>) => { a[0] = o.__multiproc__ === 'label' ? o.n + 10 : -1; }, args: [mine, out] });
    p.start();
    await p.join();
    expect(p.exitCode).toBe(0);
    expect(out[0]).toBe(11);
    q.close();
  });

  it('connections and simple queues travel as queue items too', async () => {
    const q = new mp.Queue<unknown>();
    const [a, b] = mp.Pipe();
    const sq = new mp.SimpleQueue<number>();
    await q.put({ conn: b, sq });
    const { conn, sq: sq2 } = (await q.get()) as { conn: mp.Connection; sq: mp.SimpleQueue<number> };
    expect(conn).toBeInstanceOf(mp.Connection);
    expect(sq2).toBeInstanceOf(mp.SimpleQueue);
    await a.send('through the received end');
    expect(await conn.recv()).toBe('through the received end');
    await sq2.put(5);
    expect(await sq.get()).toBe(5);
    b.close();
    conn.close(); // the last holder of that end: now the peer sees EOF
    await expect(a.recv()).rejects.toBeInstanceOf(mp.EOFError);
    a.close();
  });

  it('SimpleQueue: put, get, empty, close', async () => {
    const q = new mp.SimpleQueue<{ a: number }>();
    expect(q.empty()).toBe(true);
    await q.put({ a: 1 });
    expect(q.empty()).toBe(false);
    expect(await q.get()).toEqual({ a: 1 });
    q.close();
    await expect(q.get()).rejects.toBeInstanceOf(mp.QueueClosedError);
  });
});

describe('reading behind a fast producer', () => {
  // A consumer that finds a backlog keeps a few records between itself and
  // the newest (its reads slowed the producer down: channel.ts #readBehind).
  // These check that it engages, and that it never holds an item back for
  // good: the last records of a stream, a close, a pipe.
  const n = 1000;
  const fill = (q: mp.Queue<number>) => {
    for (let i = 0; i < n; i++) q.putSync(i);
  };

  it('get(): engages on a backlog, every item arrives once and in order, the last ones too', async () => {
    const q = new mp.Queue<number>();
    fill(q);
    const before = readBehindStats.spells;
    const got: number[] = [];
    for (let i = 0; i < n; i++) got.push(await q.get());
    expect(readBehindStats.spells).toBeGreaterThan(before);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(q.qsize()).toBe(0);
    q.close();
  });

  it('getSync(): likewise', () => {
    const q = new mp.Queue<number>();
    fill(q);
    const before = readBehindStats.spells;
    const got: number[] = [];
    for (let i = 0; i < n; i++) got.push(q.getSync());
    expect(readBehindStats.spells).toBeGreaterThan(before);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    q.close();
  });

  it('a close while reading behind: the rest is read, then the iteration ends', async () => {
    const q = new mp.Queue<number>();
    fill(q);
    const before = readBehindStats.spells;
    const got: number[] = [];
    for (let i = 0; i < 100; i++) got.push(await q.get());
    expect(readBehindStats.spells).toBeGreaterThan(before);
    q.close();
    for await (const v of q) got.push(v);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('a stream from another process with pauses: every item arrives once and in order', async () => {
    const q = new mp.Queue<number>();
    // Bursts of 5000 items with 50 ms between them: a consumer reading behind meets the end of each burst.
    const child = collect(spawnChild(fixture('q-producer.mjs'), [handle(q), 'bursts', '4', '5000,50']));
    const got: number[] = [];
    for (let i = 0; i < 20_000; i++) got.push(await q.get({ timeout: 10_000 }));
    expect(got).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
    const r = await child;
    expect(r.code, r.stderr).toBe(0);
    q.close();
  });

  it('the 16 records left after a wait are not waited for a whole 50 µs again: an item is held back 50 µs at most, not two waits of 50 µs', () => {
    const q = new mp.Queue<number>();
    for (let i = 0; i < 215; i++) q.putSync(i);
    // The 64th get finds 152 and reads behind: the gets take all but the 16 newest.
    for (let i = 0; i < 199; i++) expect(q.getSync()).toBe(i);
    expect(q.qsize()).toBe(16);
    for (let i = 215; i < 230; i++) q.putSync(i); // 31 left, 229 the newest
    // A clock that moves 1 µs a look, and a producer that runs in it: 45 µs
    // into the first wait it puts a 32nd record (the wait ends, the get takes
    // 16, and 229 is among the 16 left), 45 µs into the next one 16 more.
    let t = performance.now();
    const t0 = t;
    let phase = 0;
    let since = 0;
    let inside = false;
    const spy = vi.spyOn(performance, 'now').mockImplementation(() => {
      t += 0.001;
      if (inside) return t;
      inside = true;
      if (phase === 0 && t - t0 >= 0.045) {
        q.putSync(230);
        phase = 1;
      } else if (phase === 1 && q.qsize() <= 16) {
        since = t;
        phase = 2;
      } else if (phase === 2 && t - since >= 0.045) {
        for (let i = 231; i < 247; i++) q.putSync(i);
        phase = 3;
      }
      inside = false;
      return t;
    });
    let heldMs: number;
    try {
      for (let i = 199; ; i++) {
        expect(q.getSync()).toBe(i);
        if (i === 229) break;
      }
      heldMs = t - t0;
    } finally {
      spy.mockRestore();
    }
    // 229 was there all along: without reading behind it comes at once.
    expect(heldMs).toBeLessThan(0.06);
    while (q.qsize() > 0) q.getSync();
    q.close();
  });

  it('a pipe never reads behind (a pool talks to its workers through pipes: a reply is read as soon as it is written)', async () => {
    const [a, b] = mp.Pipe();
    for (let i = 0; i < n; i++) b.sendSync(i);
    const before = readBehindStats.spells;
    for (let i = 0; i < n; i++) expect(await a.recv()).toBe(i);
    expect(readBehindStats.spells).toBe(before);
    a.close();
    b.close();
  });
});

describe('closing unmaps', () => {
  // /proc/self/maps: Linux only. Each default Queue is 1 MiB of /dev/shm, reserved up front.
  it.runIf(process.platform === 'linux')('at once, not at the next loop turn: queues and pipes made and closed in a synchronous loop hold no mapping', async () => {
    const { readFileSync } = await import('node:fs');
    const shmMaps = (): number => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/shm/')).length;
    const before = shmMaps();
    for (let i = 0; i < 200; i++) {
      const q = new mp.Queue();
      q.putSync(i);
      expect(q.getSync()).toBe(i);
      q.close();
      q[Symbol.dispose]();
      const [a, b] = mp.Pipe();
      a.sendSync(i);
      expect(b.recvSync()).toBe(i);
      a.close();
      b.close();
      mp.Value('i', i).close();
    }
    // Before: +800 until Node ran the buffers' finalizers from setImmediate (and 200 MB of /dev/shm held).
    expect(shmMaps() - before).toBeLessThanOrEqual(0);
  });
});

describe('big items', () => {
  it.runIf(process.platform === 'linux')('received and dropped, their segments are unmapped at the next GC (each stayed mapped for good)', async () => {
    const r = await runNode(fixture('blob-maps.mjs'), [], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ afterBuffers: 0, afterObjects: 0 });
  });
});

describe('puts nobody awaits', () => {
  it('a send or put that close() ends while it waits is an unhandled rejection, not an item lost in silence', async () => {
    const r = await collect(spawn(process.execPath, [fixture('unawaited-puts.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ eof: true, closed: 8 }); // before: { eof: false, closed: 0 }
  });
});

describe('Queue through Process args', () => {
  it('a child that exits does not close the queues it was given', async () => {
    const q = new mp.Queue<string>();
    const s = new mp.SimpleQueue<string>();
    const p = new mp.Process({
      target: async (qq: mp.Queue<string>, ss: mp.SimpleQueue<string>) => {
        await qq.put('from child');
        await ss.put('simple from child');
      },
      args: [q, s],
    });
    p.start();
    await p.join();
    expect(p.exitCode).toBe(0);
    await q.put('after the child exited');
    expect(await q.get()).toBe('from child');
    expect(await q.get()).toBe('after the child exited');
    expect(await s.get()).toBe('simple from child');
    q.close();
    s.close();
  });
});

describe('a *Sync call that could only wait for ever', () => {
  it('putSync on a full queue, or getSync on an empty one, that no other process holds fails at once with what to do; with another holder it waits', async () => {
    const q = new mp.Queue<number>({ capacityBytes: 4096 });
    let n = 0;
    let full: unknown;
    try {
      for (; n < 10_000; n++) q.putSync(n); // before: blocked this thread for good once full
    } catch (e) {
      full = e;
    }
    expect(full).toBeInstanceOf(mp.QueueFullError);
    expect((full as Error).message).toMatch(/no other process holds it.*Start the consumer before filling it/);
    expect(q.qsize()).toBe(n); // nothing lost, nothing half-put
    expect(() => q.putManySync([1, 2])).toThrow(/: putManySync\(\) would block this thread for ever/); // before: it named putSync()
    expect(q.qsize()).toBe(n);
    expect(q.getSync()).toBe(0);
    const empty = new mp.Queue<number>();
    expect(() => empty.getSync()).toThrow(mp.QueueEmptyError);
    expect(() => empty.getSync()).toThrow(/no other process holds it/);
    expect(() => empty.getManySync()).toThrow(/: getManySync\(\) would block this thread for ever/); // before: it named getSync()
    expect(() => empty.getSync(50)).toThrow(mp.TimeoutError); // a timeout is honoured as given
    // With a consumer holding the queue, the same putSync waits for room.
    const p = new mp.Process({
      target: async (qq: mp.Queue<number>, count: number) => {
        for (let i = 0; i < count; i++) await qq.get();
      },
      args: [q, n - 1 + 100], // (one was taken above)
    });
    p.start();
    for (let i = 0; i < 100; i++) q.putSync(n + i);
    await p.join();
    expect(p.exitCode).toBe(0);
    expect(q.qsize()).toBe(0);
    q.close();
    empty.close();
  });

  it('JoinableQueue.joinSync() with tasks undone and no other holder fails at once (before: blocked for good); once a child has taken the queue it waits', async () => {
    const j = new mp.JoinableQueue<number>();
    expect(j.joinSync()).toBe(true); // nothing to wait for
    j.putSync(1);
    j.putSync(2);
    expect(() => j.joinSync()).toThrow(/joinSync\(\) would block this thread for ever: 2 task\(s\) are not done and no other process holds the queue/);
    expect(j.joinSync(30)).toBe(false); // a timeout is honoured as given
    expect(j.unfinishedTasks).toBe(2);
    const p = new mp.Process({
      target: async (jj: mp.JoinableQueue<number>) => {
        for (let i = 0; i < 2; i++) {
          await jj.get();
          await new Promise((r) => setTimeout(r, 50));
          jj.taskDone();
        }
      },
      args: [j],
    });
    p.start();
    expect(j.joinSync()).toBe(true); // the handle in flight, then the child, hold it
    expect(j.unfinishedTasks).toBe(0);
    await p.join();
    expect(p.exitCode).toBe(0);
    j.close();
  });
});

describe('what a trial of queues and pipes found (helper-58)', () => {
  it('after unref(), a pending Connection.poll(), JoinableQueue.join() or a write end\'s send() waiting for room lets the process end (before: each kept it alive for good)', async () => {
    for (const what of ['poll', 'join', 'send']) {
      const r = await runNode(fixture('unref-pending.mjs'), [what], { timeoutMs: 20_000 });
      expect([what, r.code, r.stdout.trim(), r.stderr]).toEqual([what, 0, 'end', '']);
    }
  }, 45_000);

  it('a subclass of JoinableQueue travels as a JoinableQueue (before: as a plain Queue, without taskDone)', async () => {
    class Jobs<T> extends mp.JoinableQueue<T> {}
    const jq = new Jobs<number>();
    for (let i = 0; i < 3; i++) await jq.put(i);
    const r = collect(spawnChild(fixture('q-joinable.mjs'), [handle(jq), '3'])); // gets 3 and marks each done
    await jq.join({ timeout: 10_000 }); // before: the child had no taskDone(), and this timed out
    expect(jq.unfinishedTasks).toBe(0);
    expect((await r).code).toBe(0);
    jq.close();
  }, 20_000);

  it('options Python has no place for are refused, not ignored: SimpleQueue.get({ timeout }), Connection.send(x, { timeout })', async () => {
    const s = new mp.SimpleQueue();
    const [a, b] = mp.Pipe();
    try {
      await expect((s.get as (o: unknown) => Promise<unknown>)({ timeout: 100 })).rejects.toThrow('SimpleQueue.get() takes no timeout or options (as Python\'s SimpleQueue): use a Queue');
      expect(() => (s.putSync as (x: unknown, o: unknown) => void)(1, { timeout: 1 })).toThrow(/SimpleQueue.putSync\(\) takes no timeout/);
      await expect((a.send as (x: unknown, o: unknown) => Promise<void>)(1, { timeout: 100 })).rejects.toThrow(/Connection.send\(\) takes only the object to send/);
      expect(s.empty()).toBe(true); // nothing was put
      const q = new mp.Queue();
      await expect(q.getMany({ timeout: 10 } as unknown as number)).rejects.toThrow('the options come second, getMany(maxItems, { timeout, signal })');
      q.close();
      expect(await b.poll(0)).toBe(false);
    } finally {
      s.close();
      a.close();
      b.close();
    }
  });

  it('SimpleQueue.putMany/getMany (and their Sync forms) refuse a timeout as put/get do (before: ignored, and getMany(5, 10) on an empty queue waited for good)', async () => {
    const s = new mp.SimpleQueue<number>();
    try {
      type Many = (a: unknown, o: unknown) => unknown;
      await expect((s.getMany as Many)(5, { timeout: 10 }) as Promise<unknown>).rejects.toThrow(/SimpleQueue.getMany\(\) takes no timeout or options/);
      await expect((s.getMany as Many)(5, 10) as Promise<unknown>).rejects.toThrow(/SimpleQueue.getMany\(\) takes no timeout/);
      expect(() => (s.getManySync as Many)(5, 10)).toThrow(/SimpleQueue.getManySync\(\) takes no timeout/);
      await expect((s.putMany as Many)([1], { timeout: 10 }) as Promise<unknown>).rejects.toThrow(/SimpleQueue.putMany\(\) takes no timeout/);
      expect(() => (s.putManySync as Many)([1], 10)).toThrow(/SimpleQueue.putManySync\(\) takes no timeout/);
      expect(s.empty()).toBe(true); // nothing was put
      await s.putMany([1, 2]);
      expect(s.getManySync(5)).toEqual([1, 2]);
    } finally {
      s.close();
    }
  });

  it('a pipe end in an item whose put() failed is given back at once: closing it then ends the peer\'s recv() (before: held until a GC, the recv waited)', async () => {
    const q = new mp.Queue({ maxsize: 1 });
    q.putSync(0);
    const ends = [mp.Pipe(), mp.Pipe(), mp.Pipe()];
    try {
      await expect(q.put({ end: ends[0]![0] }, 10)).rejects.toThrow(mp.TimeoutError);
      expect(() => q.putNowait({ end: ends[1]![0] })).toThrow(mp.QueueFullError);
      await expect(q.putMany([{ end: ends[2]![0] }, () => 1])).rejects.toThrow(TypeError);
      for (const [a, b] of ends) {
        a.close();
        await expect(b.recv({ timeout: 2000 })).rejects.toThrow(mp.EOFError);
      }
    } finally {
      for (const [a, b] of ends) {
        a.close();
        b.close();
      }
      q.close();
    }
  });

  it('a shared object in an Error\'s cause travels as itself, not as {} (before: refused; structured clone carries the cause)', () => {
    const q = new mp.Queue();
    const lock = new mp.Lock();
    try {
      // In a cause, and (through structured clone, for the Map) in an AggregateError's errors.
      q.putSync(new Error('e', { cause: { lock } }));
      q.putSync(new AggregateError([new Error('in', { cause: { lock, m: new Map() } })], 'agg'));
      const got = [((q.getSync() as Error).cause as { lock: mp.Lock }).lock, (((q.getSync() as AggregateError).errors[0] as Error).cause as { lock: mp.Lock }).lock];
      for (const l of got) {
        expect(l).toBeInstanceOf(mp.Lock);
        expect(lock.acquireSync(0)).toBe(true);
        expect(l.acquireSync(0)).toBe(false); // the same lock
        lock.release();
      }
      got[0]!.close(); // (one object per lock received in a process)
      q.putSync(new Error('plain', { cause: 'why' }));
      expect((q.getSync() as Error).cause).toBe('why');
      // And in its own props: a SharedArray (structured clone refuses its internals; the codec sends a handle).
      const arr = mp.RawArray('i', 2);
      q.putSync(Object.assign(new Error('props'), { arr, n: 1 }));
      const got2 = q.getSync() as Error & { arr: mp.SharedArray<'i'>; n: number };
      got2.arr[1] = 42;
      expect([got2.n, arr[1]]).toEqual([1, 42]);
      arr.close();
    } finally {
      q.close();
      lock.close();
    }
  });
});
