// Type-level checks of defineTask and TaskRef, compiled by test/types.test.ts
// with `tsc --noEmit` (nothing here runs): each @ts-expect-error must be an error.
import * as mp from 'multiproc';

export function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
export const fibTask = mp.defineTask(import.meta.url, fib);
export const label = mp.defineTask(import.meta.url, async function label(id: number, name: string) {
  return { id, name };
});

export async function uses(pool: mp.Pool): Promise<void> {
  const a: number[] = await pool.map(fibTask, [1, 2, 3]);
  const b: { id: number; name: string } = await pool.apply(label, [1, 'x']);
  const c: { id: number; name: string }[] = await pool.starmap(label, [[1, 'a'], [2, 'b']]);
  const pairs = [[1, 'a'], [2, 'b']] as const;
  const c2: { id: number; name: string }[] = await pool.starmap(label, pairs); // readonly tuples (before: refused)
  const sums: number[] = await pool.starmap((x: number, y: number) => x + y, [[1, 2], [3, 4]]);
  const inferred = await pool.starmap((x: number, y: string) => `${x}${y}`, [[1, 'a']] as const);
  const s2: string[] = inferred;
  // @ts-expect-error starmap checks each args tuple
  await pool.starmap(label, [['a', 1]]);
  void [c2, sums, s2];
  for await (const v of pool.imap(fibTask, [1, 2])) {
    const n: number = v;
    void n;
  }
  // @ts-expect-error fib takes numbers
  await pool.map(fibTask, ['a']);
  // @ts-expect-error the result is a number, not a string
  const wrong: string[] = await pool.map(fibTask, [1]);
  // @ts-expect-error label takes (number, string)
  await pool.apply(label, ['x', 1]);
  // @ts-expect-error map calls its task with one argument, and label takes two (before: it compiled, as an unchecked module task, and gave [NaN, NaN]-style results)
  await pool.map(label, [1, 2]);
  // @ts-expect-error likewise imap
  pool.imap(label, [1, 2]);
  // @ts-expect-error likewise imapUnordered
  pool.imapUnordered(label, [1, 2]);
  const { result } = await pool.submit(label, [2, 'y']);
  const d: { id: number; name: string } = await result;
  // @ts-expect-error submit checks arguments as apply does
  await pool.submit(fibTask, ['x']);
  // @ts-expect-error a task that takes arguments needs its args (it ran with undefined ones)
  await pool.apply((a: number, b: number) => a + b);
  // @ts-expect-error likewise for submit
  await pool.submit(label);
  const none: number = await pool.apply(() => 7); // a task that takes none needs no args
  const opt: number = await pool.apply((x?: number) => x ?? 1); // nor one whose parameters are optional
  const mod: unknown = await pool.apply({ module: './task.mjs', export: 'f' }); // a module task: unchecked
  void [none, opt, mod];
  const e: mp.Submitted<number> = await pool.submit(fibTask, [5]);
  void [d, e];
  // A plain { module, export } still works, untyped.
  const u: unknown[] = await pool.map({ module: './x.mjs', export: 'f' }, [1]);
  void [a, b, c, wrong, u];
  new mp.Process({ target: fibTask, args: [10] }).start();
}

export async function locksAndInitializers(): Promise<void> {
  // getLock() has the lock idioms (it was typed with acquire/release only).
  const v = mp.Value('i', 0);
  await v.getLock().withLock(() => {
    v.value += 1;
  });
  {
    using g = v.getLock().lockSync();
    void g;
  }
  // An initializer with typed parameters (was: not assignable to TaskRef<unknown[]>).
  const pool = new mp.Pool({ initializer: (l: mp.Lock, n: number) => void [l, n], initargs: [new mp.Lock(), 1] });
  await pool.terminate();
}

export function processAndInitializerArgs(): void {
  // args are checked against the target's parameters (before: any args compiled).
  // @ts-expect-error the target takes a number
  new mp.Process({ target: (a: number) => void a, args: ['x'] });
  // @ts-expect-error the target takes no args
  new mp.Process({ target: () => {}, args: [1] });
  // @ts-expect-error fib takes a number
  new mp.Process({ target: fibTask, args: ['x'] });
  // @ts-expect-error a context's Process checks them too
  new (mp.getContext('spawn').Process)({ target: (a: number) => void a, args: ['x'] });
  new mp.Process({ target: (a: number, s?: string) => void [a, s], args: [1] });
  new mp.Process({ target: (...xs: number[]) => void xs, args: [1, 2, 3] });
  new mp.Process({ target: (n: number) => void n, args: [1] as const });
  new mp.Process({ target: async () => {} });
  // Shared objects and handles arrive as what was sent.
  const lock = new mp.Lock();
  const v = mp.Value('i', 0);
  const q = new mp.Queue<string>();
  new mp.Process({ target: (l: mp.Lock, val: typeof v, qq: mp.Queue<string>, h: mp.Handle) => void [l, val, qq, h], args: [lock, v, q, mp.toHandle(lock)] });
  // A module target, or a target typed only as ProcessTarget, leaves args unchecked.
  new mp.Process({ target: { module: './x.mjs', export: 'f' }, args: [1, 'x'] });
  const t: mp.ProcessTarget = (n: number) => n;
  new mp.Process({ target: t, args: ['anything', 2] });
  // Process<A> is a Process.
  const ps: mp.Process[] = [new mp.Process({ target: (a: number) => void a, args: [1] }), new (mp.getContext().Process)({ target: () => {} })];
  void ps;
  // initargs are checked against the initializer's parameters.
  // @ts-expect-error the initializer takes a number
  new mp.Pool({ initializer: (x: number) => void x, initargs: ['x'] });
  // @ts-expect-error a context's Pool checks them too
  new (mp.getContext('spawn').Pool)({ initializer: (x: number) => void x, initargs: ['x'] });
  const pools: mp.Pool[] = [new mp.Pool({ initializer: (x: number) => void x, initargs: [1] }), new mp.Pool({ initializer: { module: './init.mjs' }, initargs: [1, 'x'] }), new mp.Pool()];
  void pools;
  // Ordinary code that must keep compiling: options typed apart, a subclass, a helper that takes
  // options; args built at run time with a tuple type.
  const opts: mp.ProcessOptions = { target: (n: number) => n, args: [1] };
  new mp.Process(opts);
  class MyProc extends mp.Process {
    constructor(n: number) {
      super({ target: (x: number) => x, args: [n] });
    }
  }
  new MyProc(1);
  const make = (o: mp.ProcessOptions): mp.Process => new mp.Process(o);
  make({ target: (s: string) => s, args: ['x'] });
  const nums: number[] = [1, 2];
  // @ts-expect-error an array may hold any number of items: give args built at run time a tuple type
  new mp.Process({ target: (a: number, b: number) => a + b, args: nums });
  new mp.Process({ target: (a: number, b: number) => a + b, args: nums as [number, number] });
  // @ts-expect-error a wrong order
  new mp.Process({ target: (a: number, b: string) => a + b, args: ['x', 1] });
  // @ts-expect-error a missing argument
  new mp.Process({ target: (a: number, b: string) => a + b, args: [1] });
  // @ts-expect-error initargs are counted too
  new mp.Pool({ initializer: (l: mp.Lock, n: number) => void [l, n], initargs: [lock] });
  const popts: mp.PoolOptions = { initializer: (l: mp.Lock) => void l, initargs: [lock] };
  new mp.Pool(popts);
  const dyn: unknown[] = [1];
  // @ts-expect-error unknown values for a number parameter: cast them
  new mp.Process({ target: (n: number) => n, args: dyn });
}

export function undefinedOptions(somePool: mp.Pool): void {
  // exactOptionalPropertyTypes: an option set to undefined means "not given" (before: TS2379)
  const unset: number | undefined = undefined;
  const sig: AbortSignal | undefined = undefined;
  void new mp.Queue({ maxsize: unset, capacityBytes: unset }).get({ timeout: unset, signal: sig });
  void somePool.apply(fib, [1], { timeout: unset, signal: sig, cancelGraceMs: unset, onProgress: undefined });
  void somePool.map(fib, [1], { chunksize: unset });
  new mp.Pool({ processes: unset, maxTasksPerChild: unset, startMethod: undefined, cwd: undefined });
  // null where Python's Pool takes None: as left out
  new mp.Pool({ processes: null, maxTasksPerChild: null, initializer: null, initargs: null, startMethod: null });
  new mp.Pool({ initializer: () => 0, initargs: null });
  // @ts-expect-error an initializer that needs arguments needs its initargs, not null
  new mp.Pool({ initializer: (n: number) => n, initargs: null });
  new mp.Process({ target: () => 0, name: undefined, daemon: undefined });
  void new mp.Lock().acquire({ timeout: unset });
}

export async function taskErrors(somePool: mp.Pool): Promise<number | undefined> {
  try {
    await somePool.apply(fibTask, [1]);
  } catch (e) {
    return (e as mp.TaskError).workerPid; // which worker threw it
  }
  return undefined;
}

// A target or initializer that needs arguments needs args / initargs (before:
// optional whatever the target needed, and the child failed on undefined).
export function argsNeeded(): void {
  // @ts-expect-error (n: number) needs args
  void new mp.Process({ target: (n: number) => n });
  void new mp.Process({ target: (n: number) => n, args: [1] });
  void new mp.Process({ target: (n?: number) => n });
  void new mp.Process({ target: () => 1 });
  void new mp.Process({ target: { module: './x.mjs' } });
  const ctx = mp.getContext('spawn');
  // @ts-expect-error the context's Process too
  void new ctx.Process({ target: (s: string) => s });
  // @ts-expect-error (x: number) needs initargs
  void new mp.Pool({ initializer: (x: number) => x });
  void new mp.Pool({ initializer: (x: number) => x, initargs: [1] });
  void new mp.Pool({ initializer: () => 0, processes: 1 });
  void new mp.Pool();
  void new ctx.Pool({ processes: 1 });
}
