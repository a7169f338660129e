/**
 * Global guard for the whole suite: every segment a test makes carries a
 * per-run name prefix, and every process a test starts inherits it in its
 * environment. After the run, nothing with that prefix may remain in
 * /dev/shm, no segment the tree created may still exist (MULTIPROC_SHM_AUDIT
 * lists them; the only way to check on macOS, which has no /dev/shm), no
 * process with the prefix may still be alive, and the resource tracker must
 * not have had to unlink any SharedMemory the tests forgot (it appends those
 * to the leak report). Any of these fails the run.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processTable, segmentExists } from './helpers';

const tag = `t${randomBytes(4).toString('hex').slice(0, 7)}`;
const report = join(tmpdir(), `multiproc-leaks-${tag}.txt`);
const audit = join(tmpdir(), `multiproc-audit-${tag}.txt`);
const hasDevShm = existsSync('/dev/shm');

async function leftoverSegments(): Promise<string[]> {
  const left = new Set(hasDevShm ? readdirSync('/dev/shm').filter((n) => n.startsWith(`${tag}-`)) : []);
  const created = existsSync(audit) ? new Set(readFileSync(audit, 'utf8').split('\n').filter(Boolean)) : new Set<string>();
  for (const osname of created) {
    const name = osname.replace(/^\//, '');
    if (left.has(name)) continue;
    if (hasDevShm ? existsSync(`/dev/shm/${name}`) : await segmentExists(name)) left.add(name);
  }
  return [...left];
}

/** The pids whose environment holds this run's tag. */
function taggedPids(): Set<number> {
  const tagged = new Set<number>();
  const needle = `MULTIPROC_SHM_PREFIX=${tag}`;
  if (existsSync('/proc/self/environ')) {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(needle)) tagged.add(Number(pid));
      } catch {
        // process ended while we looked
      }
    }
    return tagged;
  }
  // macOS: ps -E appends each process's environment (this user's) to its command.
  for (const line of execFileSync('ps', ['-A', '-E', '-ww', '-o', 'pid=,command='], { encoding: 'utf8' }).split('\n')) {
    if (line.includes(`${needle} `) || line.endsWith(needle)) tagged.add(Number(/^\s*(\d+)/.exec(line)?.[1]));
  }
  return tagged;
}

function leftoverProcesses(): string[] {
  const tagged = taggedPids();
  const found: string[] = [];
  for (const r of processTable()) {
    if (!tagged.has(r.pid) || r.pid === process.pid || r.zombie) continue; // zombies are dead, just unreaped
    if (/vitest/.test(r.command)) continue; // the runner's own workers, ending with us
    found.push(`${r.pid}: ${r.command.slice(0, 160)}`);
  }
  return found;
}

export function setup(): void {
  process.env.MULTIPROC_SHM_PREFIX = tag;
  process.env.MULTIPROC_LEAK_REPORT = report;
  process.env.MULTIPROC_TEST_TAG = tag;
  process.env.MULTIPROC_SHM_AUDIT = audit;
}

export async function teardown(): Promise<void> {
  // Trackers clean up when the last process of their tree exits: give them time.
  const deadline = Date.now() + 10_000;
  let segs = await leftoverSegments();
  let procs = leftoverProcesses();
  while ((segs.length > 0 || procs.length > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    segs = await leftoverSegments();
    procs = leftoverProcesses();
  }
  const leaks = existsSync(report) ? readFileSync(report, 'utf8').trim() : '';
  rmSync(report, { force: true });
  rmSync(audit, { force: true });
  const problems: string[] = [];
  if (segs.length > 0) problems.push(`segments left: ${segs.join(', ')}`);
  if (procs.length > 0) problems.push(`processes still running:\n  ${procs.join('\n  ')}`);
  if (leaks !== '') problems.push(`SharedMemory segments the tests never unlinked (the tracker did): ${leaks.split('\n').join(', ')}`);
  if (problems.length > 0) {
    const mp = await import('multiproc');
    for (const s of segs) {
      try {
        mp.SharedMemory.attach(s).unlink();
      } catch {
        // gone meanwhile
      }
    }
    // vitest only logs an error thrown here; the exit code must say it too.
    process.exitCode = 1;
    throw new Error(`multiproc test suite leaked resources:\n${problems.join('\n')}`);
  }
}
