// The foundation's wait/wake primitive, on a word in a shared segment.
import { spawn } from 'node:child_process';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import * as mp from 'multiproc';
import { describe, expect, it } from 'vitest';
import { collect, fixture, hasRseqWord, isLinux, runNode, sleep } from './helpers';

// Internal module: the primitive that locks and queues are built on.
const wait = await import('../dist/cjs/wait.js');

/**
 * Waits, up to 10 s, until threads of this process sleep in futex() on the
 * first `n` words of one page (a fresh segment's): read from each thread's
 * pending system call, /proc/self/task/<tid>/syscall (Linux, x64 and arm64;
 * elsewhere, or where that file cannot be read, it returns at once).
 */
async function futexWaitsOn(n: number): Promise<void> {
  const futex = ({ x64: '202', arm64: '98' } as Record<string, string>)[process.arch];
  if (!isLinux || futex === undefined) return;
  try {
    readFileSync('/proc/thread-self/syscall', 'latin1');
  } catch {
    return;
  }
  const asleep = (): boolean => {
    const at = new Set<bigint>();
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const [nr, addr] = readFileSync(`/proc/self/task/${tid}/syscall`, 'latin1').split(' ');
        if (nr === futex && addr !== undefined) at.add(BigInt(addr));
      } catch {
        // ended meanwhile
      }
    }
    return [...at].some((a) => a % 4096n === 0n && Array.from({ length: n }, (_, k) => a + BigInt(4 * k)).every((w) => at.has(w)));
  };
  for (const t0 = performance.now(); !asleep() && performance.now() - t0 < 10_000;) await sleep(10);
}

describe('wait / wake', () => {
  it('waitSync returns NotEqual, TimedOut, or Woken', () => {
    const shm = mp.SharedMemory.create(64);
    const w = new Int32Array(shm.buffer);
    expect(wait.waitSync(shm.buffer, 0, 1, 10)).toBe(2);
    expect(wait.waitSync(shm.buffer, 0, 0, 20)).toBe(1);
    shm.close(); shm.unlink();
    void w;
  });

  it('a child process wakes an async waiter in the parent', async () => {
    const shm = mp.SharedMemory.create(64);
    const w = new Int32Array(shm.buffer);
    const pending = wait.waitAsync(shm.buffer, 4, 0);
    const child = spawn(process.execPath, [fixture('wake-child.mjs'), shm.name], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await collect(child);
    expect(r.stderr).toBe('');
    expect(await pending).toBe(0);
    expect(Atomics.load(w, 1)).toBe(1);
    shm.close(); shm.unlink();
  });

  it('500 async waiters share native threads, time out, abort, and do not starve fs', async () => {
    const shm = mp.SharedMemory.create(64);
    const words = new Int32Array(shm.buffer);
    const waits: Promise<number>[] = [];
    for (let i = 0; i < 500; i++) waits.push(wait.waitAsync(shm.buffer, (i % 8) * 4, 0));
    // 8 distinct words: at most 8 native waits, whatever the number of promises.
    expect(wait.waiterThreads()).toBeLessThanOrEqual(8 + 4);
    const t0 = performance.now();
    const text = await fsp.readFile(new URL(import.meta.url), 'utf8');
    expect(text.length).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(1000);
    const timed = await wait.waitAsync(shm.buffer, 40, 0, 30);
    expect(timed).toBe(1);
    const ac = new AbortController();
    const aborted = wait.waitAsync(shm.buffer, 44, 0, Infinity, ac.signal);
    ac.abort(new Error('stop'));
    await expect(aborted).rejects.toThrow('stop');
    // The 8 native waits asleep in the kernel before their words change: a
    // thread that had not reached its futex call by then (a loaded machine)
    // finds its word changed and reports NotEqual (2), not Woken (a loaded
    // run saw that; stored with no pause after the submits, most are 2).
    await futexWaitsOn(8);
    for (let k = 0; k < 8; k++) {
      Atomics.store(words, k, 1);
      wait.wake(shm.buffer, k * 4);
    }
    const results = await Promise.all(waits);
    expect(results.filter((r) => r !== 0)).toEqual([]);
    shm.close(); shm.unlink();
  });

  it('currentCpu() is the CPU the kernel reports for this thread (-1 where the OS has no rseq word)', () => {
    if (!hasRseqWord()) {
      expect(wait.currentCpu()).toBe(-1);
      return;
    }
    // /proc/thread-self/stat, field 39: the CPU the thread last ran on. The
    // thread may move between the two reads; they agree on some try.
    const kernelCpu = (): number => Number(readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ')[36]);
    let agreed = false;
    for (let i = 0; i < 100 && !agreed; i++) {
      const a = wait.currentCpu();
      agreed = a >= 0 && kernelCpu() === a && wait.currentCpu() === a;
    }
    expect(agreed).toBe(true);
  });

  it('a worker thread that alone loaded multiproc can be terminated while it waits (the addon stays mapped)', async () => {
    const r = await runNode(fixture('worker-thread-only.mjs'));
    expect(r.signal ?? null, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  });

  it('a wait that times out lets go of its native thread at once (the wait is cancelled, not left to sleep on)', async () => {
    const shm = mp.SharedMemory.create(64);
    expect(await wait.waitAsync(shm.buffer, 0, 0, 20)).toBe(1);
    // The native side reports the cancelled job once its thread has left the word.
    for (let i = 0; i < 100 && wait.nativeWaitsOn(shm.buffer); i++) await sleep(20);
    expect(wait.nativeWaitsOn(shm.buffer)).toBe(false);
    shm.close(); shm.unlink();
  });

  // Last in this file (threads stay a while after their waits end).
  it.runIf(isLinux)('waiter threads whose waits ended stay for the next waits: 200 waits that end and start again make no new threads', async () => {
    const tids = (): string[] => readdirSync('/proc/self/task');
    /** The threads of this process while 200 waits are pending. */
    const burst = async (): Promise<string[]> => {
      const events = Array.from({ length: 200 }, () => new mp.Event());
      const waits = events.map((e) => e.wait());
      await sleep(100);
      const during = tids();
      for (const e of events) e.set();
      expect(await Promise.all(waits)).toEqual(events.map(() => true));
      for (const e of events) e.close();
      return during;
    };
    const first = new Set(await burst());
    await sleep(100);
    const second = await burst();
    // Before, all but 4 idle threads exited as their waits ended: ~196 new ones.
    expect(second.filter((t) => !first.has(t)).length).toBeLessThan(20);
  });

  it.runIf(isLinux)('500 async waits on different words keep their 500 threads while they wait: none ends and is made again', async () => {
    const events = Array.from({ length: 500 }, () => new mp.Event());
    const waits = events.map((e) => e.wait());
    const tids = (): string[] => readdirSync('/proc/self/task');
    await sleep(300); // every waiter thread is up
    const first = new Set(tids());
    const fresh = new Set<string>();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < 30; i++) {
      await sleep(100);
      for (const t of tids()) if (!first.has(t)) fresh.add(t);
    }
    const cpu = process.cpuUsage(cpu0);
    // Each native wait used to end after 1 s, its thread exit, and the wait
    // start again on a new thread: 330-670 new thread ids in these 3 s here.
    expect(fresh.size).toBeLessThan(20);
    expect(wait.waiterThreads()).toBeGreaterThanOrEqual(500);
    // CPU time of the whole process (vitest, the sampling above) in these
    // 3 s: ~330 ms here before, 65-80 ms now.
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(200);
    for (const e of events) e.set();
    expect(await Promise.all(waits)).toEqual(events.map(() => true));
    for (const e of events) e.close();
  });
});
