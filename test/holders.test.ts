// The references a process killed by a signal held: given back by the next
// release of a living holder, or by the tracker once the dead is reaped
// (lib/holders.ts). Before, every segment a SIGKILLed child had attached
// stayed in /dev/shm until the whole process tree ended.
import { describe, expect, it } from 'vitest';
import * as mp from 'multiproc';
import { fixture, runNode, segmentExists, sleep } from './helpers';

/** The segment's name; the reference the handle took is given back (fromHandle of an object this process has). */
function nameOf(o: unknown): string {
  const h = mp.toHandle(o as Parameters<typeof mp.toHandle>[0]);
  // A second object over the segment, holding the handle's reference: let go
  // (a Queue's close() would close the queue for every process).
  const twin = mp.fromHandle(h) as { close(): void; [Symbol.dispose]?: () => void };
  if (twin[Symbol.dispose]) twin[Symbol.dispose]!();
  else twin.close();
  return (h as unknown as { name: string }).name;
}

/** Polls until the segment is gone, up to ms; whether it went. */
async function goneWithin(name: string, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (!(await segmentExists(name))) return true;
    await sleep(20);
  }
  return !(await segmentExists(name));
}

/** A child that attaches what it is given, says so through `ready`, and waits to be killed. */
async function startHolder(method: mp.StartMethod, args: unknown[], ready: mp.Value<'i'>): Promise<mp.Process> {
  const ctx = mp.getContext(method);
  const p = new ctx.Process({
    target: async (r: mp.Value<'i'>, ...held: unknown[]) => {
      r.value = held.length;
      await new Promise(() => setInterval(() => {}, 1000));
    },
    args: [ready, ...args],
  });
  p.start();
  const t0 = Date.now();
  while (ready.value === 0 && Date.now() - t0 < 10_000) await sleep(5);
  expect(ready.value).toBe(args.length);
  return p;
}

describe('segments a killed process held', () => {
  for (const method of ['forkserver', 'spawn'] as const) {
    it(`${method}: the living keep them; the last living holder's close() unlinks them at once (before: until the tree ended)`, async () => {
      const q = new mp.Queue<number>();
      const v = new mp.Value('i', 0);
      const ready = new mp.Value('i', 0);
      const names = [nameOf(q), nameOf(v)];
      const p = await startHolder(method, [q, v], ready);
      p.kill();
      await p.join();
      expect(p.exitCode).toBe(-9);
      await sleep(400); // the tracker's sweep after the kill has run: it must not take the parent's references
      for (const n of names) expect(await segmentExists(n)).toBe(true);
      await q.put(5);
      expect(await q.get()).toBe(5);
      v.value = 42;
      expect(v.value).toBe(42);
      q.close();
      v.close();
      for (const n of names) expect(await segmentExists(n)).toBe(false); // at once, not eventually
      ready.close();
    });
  }

  it('closed by the parent first, then the child killed: the tracker unlinks them once the child is reaped', async () => {
    const q = new mp.Queue<number>();
    const v = new mp.Value('i', 0);
    const ready = new mp.Value('i', 0);
    const names = [nameOf(q), nameOf(v)];
    const p = await startHolder('forkserver', [q, v], ready);
    q.close();
    v.close();
    for (const n of names) expect(await segmentExists(n)).toBe(true); // the child's references
    p.kill();
    await p.join();
    for (const n of names) expect(await goneWithin(n, 3000)).toBe(true);
    ready.close();
  });

  it('a Value a consumer received through a queue, the consumer then killed: the parent keeps it, and its close() unlinks it', async () => {
    const q = new mp.Queue<mp.Value<'i'>>();
    const ready = new mp.Value('i', 0);
    const p = new mp.Process({
      target: async (qq: mp.Queue<mp.Value<'i'>>, r: mp.Value<'i'>) => {
        const got = await qq.get();
        r.value = got.value;
        await new Promise(() => setInterval(() => {}, 1000));
      },
      args: [q, ready],
    });
    p.start();
    const v = new mp.Value('i', 7);
    const name = nameOf(v);
    await q.put(v);
    const t0 = Date.now();
    while (ready.value !== 7 && Date.now() - t0 < 10_000) await sleep(5);
    expect(ready.value).toBe(7);
    p.kill();
    await p.join();
    await sleep(400);
    expect(await segmentExists(name)).toBe(true);
    expect(v.value).toBe(7);
    v.close();
    expect(await segmentExists(name)).toBe(false);
    q.close();
    ready.close();
  });

  it('a pool worker killed by a call\'s timeout gives back the Value its task held when the caller closes it', async () => {
    await using pool = new mp.Pool({ processes: 1 });
    const v = new mp.Value('i', 0);
    const name = nameOf(v);
    const stuck = pool.apply(
      (x: mp.Value<'i'>) => {
        x.value = 1;
        for (;;);
      },
      [v],
      { timeout: 1000 },
    );
    await expect(stuck).rejects.toBeInstanceOf(mp.TimeoutError);
    expect(v.value).toBe(1);
    expect(await pool.apply((a: number) => a + 1, [1])).toBe(2); // its replacement
    v.close();
    expect(await goneWithin(name, 1000)).toBe(true);
  });

  for (const method of ['spawn', 'forkserver'] as const) {
    it(`${method}: a consumer killed while it decodes a record naming an object it has already leaves that object's references right for the next consumer (before: unlinked under its live holders)`, async () => {
      const r = await runNode(fixture('holder-decode-kill.mjs'), [method], { timeoutMs: 30_000 });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ c1Exit: -9, c2Got: 7, existsWhileC2Holds: true, handedBack: 99, existsAfterAll: false });
    });
  }

  for (const method of ['spawn', 'forkserver'] as const) {
    it(`${method}: a consumer killed in the middle of a getMany() gives back the objects of the records it had consumed (before: kept until the tree ended)`, async () => {
      const r = await runNode(fixture('holder-takemany-kill.mjs'), [method], { timeoutMs: 30_000 });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ exit: -9, drained: [2, 3], left: [false, false, false] });
    });
  }

  it('getSync() without a timeout on an empty queue whose only other holder was killed throws instead of blocking for good', async () => {
    const r = await runNode(fixture('dead-holder-getsync.mjs'), [], { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['waits while the producer lives', 'QueueEmptyError: no other process holds it']);
    expect(r.code).toBe(0);
  });
});

describe("a child's args: counted in a pending slot until it takes them over", () => {
  for (const method of ['spawn', 'forkserver'] as const) {
    it(`${method}: a child killed right after start() (before it attached them, or after): the parent keeps them, and its close() unlinks them at once (before: until the tree ended)`, async () => {
      const ctx = mp.getContext(method);
      // A spawned child takes ~50 ms to boot: every kill lands first. A forkserver child attaches within
      // a ms or so: the kills land on both sides of it, and neither may leak or unlink early.
      for (let round = 0; round < (method === 'spawn' ? 3 : 8); round++) {
        const q = new mp.Queue<number>();
        const v = new mp.Value('i', 5);
        const names = [nameOf(q), nameOf(v), nameOf(v.getLock())];
        const p = new ctx.Process({ target: async () => new Promise(() => setInterval(() => {}, 1000)), args: [q, v, v, { q }] });
        p.start();
        if (round % 2 === 1) await sleep(round);
        p.kill();
        await p.join();
        expect(p.exitCode).toBe(-9);
        for (const n of names) expect(await segmentExists(n)).toBe(true);
        v.value = 6;
        expect(v.value).toBe(6);
        q.close();
        v.close();
        for (const n of names) expect(await segmentExists(n)).toBe(false);
      }
    });
  }

  it('spawn: closed by the parent first, then the child killed before it attached them: unlinked once the parent learns of the exit', async () => {
    const v = new mp.Value('i', 5);
    const a = new mp.SharedArray('d', 8, { lock: false });
    const names = [nameOf(v), nameOf(v.getLock()), nameOf(a)];
    const p = new mp.Process({ target: async () => new Promise(() => setInterval(() => {}, 1000)), args: [v, a], startMethod: 'spawn' });
    p.start();
    v.close();
    a.close();
    for (const n of names) expect(await segmentExists(n)).toBe(true); // the child's references, still in flight
    p.kill();
    await p.join();
    for (const n of names) expect(await segmentExists(n)).toBe(false);
  });

  it('a child that took its args over and ended normally gave them back: the parent keeps them, and its close() unlinks them', async () => {
    const v = new mp.Value('i', 5);
    const names = [nameOf(v), nameOf(v.getLock())];
    const p = new mp.Process({ target: (x: mp.Value<'i'>, y: mp.Value<'i'>) => { x.value += y.value; }, args: [v, v] });
    p.start();
    await p.join();
    expect(p.exitCode).toBe(0);
    expect(v.value).toBe(10);
    for (const n of names) expect(await segmentExists(n)).toBe(true);
    v.close();
    for (const n of names) expect(await segmentExists(n)).toBe(false);
  });

  it("'fork' (node --single-threaded): the args and the copies of everything the parent held, of a child killed right after start()", async () => {
    const r = await runNode(fixture('fork-killed-args.mjs'), [], { nodeArgs: ['--single-threaded'], timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(Array(8).fill('-9 kept=true usable=true gone=true'));
  });
});


describe('pending slots: review helper-94', () => {
  it("forkserver: a child still running when its Popen is finished (the zygote stopped and shut down) takes its args over after: the parent's Value is not unlinked under it (before: given back twice once the child died)", async () => {
    const r = await runNode(fixture('zygote-stopped-args.mjs'), [], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ finishedEarly: true, keptWhileHeld: true, goneAfterClose: true });
  });

  it("'fork' (node --single-threaded): a child given a Value the parent holds takes one holder slot for its copy and its arg, so 16 children all fit the table and leave nothing when killed (before: two slots each, 12 fitted, 9 references kept until the tree ended)", async () => {
    const r = await runNode(fixture('fork-args-slots.mjs'), [], { nodeArgs: ['--single-threaded'], timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ childrenWithASlot: 16, slotsPerChild: 1, leftAfterKills: 0, goneAfterClose: true });
  });

  for (const method of ['forkserver', 'spawn'] as const) {
    it(`${method}: a child whose args' pending slot was given back by another before it came to take it over adds references of its own (before: it adopted given-back ones, and its death unlinked the Value under the parent)`, async () => {
      const r = await runNode(fixture('args-given-back.mjs'), [method], { timeoutMs: 60_000 });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ given: 2, childSaw: 5, rcWhileChildHolds: 2, keptWhileHeld: true, value: 5, goneAfterClose: true });
    });
  }

  it("a start taken for failed while its child ran and took its args' slots over gives back only what the child did not take (before: the Value and the pipe were unlinked under the parent once the child was killed, and the parent's reader saw EOF)", async () => {
    const r = await runNode(fixture('unsent-claimed.mjs'), [], { timeoutMs: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ready: 'ready 5', valueKept: true, pipeKept: true, idle: 'TimeoutError', pipeWorks: true, valueGone: true, pipeGone: true });
  });

  for (const method of ['forkserver', 'spawn'] as const) {
    it(`${method}: a child whose pipe end arg was given back before it took it over counts itself among the end's holders anew (before: it ended with the parent's count, closing the end under the parent)`, async () => {
      const r = await runNode(fixture('pipe-args-given-back.mjs'), [method], { timeoutMs: 60_000 });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({
        cancelled: 1,
        childSent: true,
        exit: 0,
        fromChild: 'from the child',
        later: 'from the parent, after the child ended', // before: EOFError
        end: 'EOFError',
        goneAfterClose: true,
      });
    });
  }
});
