/**
 * Global guard for the whole suite: every segment a test makes carries a
 * per-run name prefix, and every process a test starts inherits it in its
 * environment. After the run, nothing with that prefix may remain in
 * /dev/shm, no process with it may still be alive, and the resource tracker
 * must not have had to unlink any SharedMemory the tests forgot (it appends
 * those to the leak report). Any of these fails the run.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tag = `t${randomBytes(4).toString('hex').slice(0, 7)}`;
const report = join(tmpdir(), `multiproc-leaks-${tag}.txt`);

function leftoverSegments(): string[] {
  if (!existsSync('/dev/shm')) return [];
  return readdirSync('/dev/shm').filter((n) => n.startsWith(`${tag}-`));
}

function leftoverProcesses(): string[] {
  if (!existsSync('/proc')) return [];
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'latin1');
      if (!env.split('\0').includes(`MULTIPROC_SHM_PREFIX=${tag}`)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      if (/\) [ZX] /.test(stat)) continue; // zombies are dead, just unreaped
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ');
      if (/vitest/.test(cmd)) continue; // the runner's own workers, ending with us
      found.push(`${pid}: ${cmd.slice(0, 160)}`);
    } catch {
      // process ended while we looked
    }
  }
  return found;
}

export function setup(): void {
  process.env.MULTIPROC_SHM_PREFIX = tag;
  process.env.MULTIPROC_LEAK_REPORT = report;
  process.env.MULTIPROC_TEST_TAG = tag;
}

export async function teardown(): Promise<void> {
  // Trackers clean up when the last process of their tree exits: give them time.
  const deadline = Date.now() + 10_000;
  let segs = leftoverSegments();
  let procs = leftoverProcesses();
  while ((segs.length > 0 || procs.length > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    segs = leftoverSegments();
    procs = leftoverProcesses();
  }
  const leaks = existsSync(report) ? readFileSync(report, 'utf8').trim() : '';
  rmSync(report, { force: true });
  const problems: string[] = [];
  if (segs.length > 0) problems.push(`segments left in /dev/shm: ${segs.join(', ')}`);
  if (procs.length > 0) problems.push(`processes still running:\n  ${procs.join('\n  ')}`);
  if (leaks !== '') problems.push(`SharedMemory segments the tests never unlinked (the tracker did): ${leaks.split('\n').join(', ')}`);
  if (problems.length > 0) {
    for (const s of segs) rmSync(join('/dev/shm', s), { force: true });
    // vitest only logs an error thrown here; the exit code must say it too.
    process.exitCode = 1;
    throw new Error(`multiproc test suite leaked resources:\n${problems.join('\n')}`);
  }
}
