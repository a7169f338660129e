import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runNode } from './helpers';

const example = (name: string): string => fileURLToPath(new URL(`../examples/${name}`, import.meta.url));

// The examples are documentation: they must keep running, and say what they claim.
describe('examples', () => {
  it('hello.mjs (npm run demo): three processes and a pool', async () => {
    const r = await runNode(example('hello.mjs'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/joined 3 workers \(forkserver\) in \d+ ms; exit codes 0, 0, 0; pids seen through shared memory: \d+, \d+, \d+/);
    expect(r.stdout).toMatch(/hello, linus, from pid \d+/);
  });

  it('python-interop.mjs: a ShareableList shared with python3, and a supervisor loop on mp.wait()', async () => {
    const r = await runNode(example('python-interop.mjs'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("python saw [41, 2.5, 'from py', None]\nnode saw [ 42, 2.5, 'from py', null ]\nreceived 6 messages from 3 workers; exit codes 0, 0, 0\n");
  });

  it('pool-progress.mjs: imapUnordered drives a progress bar', async () => {
    const r = await runNode(example('pool-progress.mjs'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/sum of 200 results: \d+/);
  });

  it('backpressure.mjs: submit() keeps an endless stream within maxPending, and every result arrives', async () => {
    const r = await runNode(example('backpressure.mjs'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /submitted (\d+) lines in ~1 s, at most (\d+) pending at once \(maxPending 8\)\nall (\d+) results in/.exec(r.stdout);
    expect(m).not.toBeNull();
    const [, submitted, most, done] = m!.map(Number);
    expect(submitted).toBeGreaterThan(8);
    expect(most).toBeLessThanOrEqual(8);
    expect(done).toBe(submitted);
  });

  it('long-tasks.mjs: defineTask, reportProgress and a timeout the task obeys', async () => {
    const r = await runNode(example('long-tasks.mjs'));
    expect(r.code).toBe(0);
    // pi(200,000) .. pi(500,000)
    for (const [n, limit] of [[17984, 200000], [25997, 300000], [33860, 400000], [41538, 500000]]) {
      expect(r.stdout).toContain(`${n} primes up to ${limit}`);
    }
    expect(r.stdout).toMatch(/TimeoutError after \d+ ms: Task did not finish within 100 ms/);
    expect(r.stdout).toMatch(/workers: pid \d+ \(\d+ jobs, started in \d+ ms\), pid \d+/);
    expect(r.stderr).not.toContain('{limit}'); // piped: before, cli-progress printed every bar's format unfilled
  });
});
