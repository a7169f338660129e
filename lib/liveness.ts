/**
 * Is a process still running? Every robust wait (a lock whose holder may
 * have died, a ring record whose producer may have died, a pipe peer) asks,
 * and the honest answer reads /proc (~25 µs here): too slow for every step
 * of a hot path. recentlyAlive trusts a "yes" for kTrustMs, so a process that
 * died in the last kTrustMs may count as alive once more; callers wait in
 * slices of that length anyway.
 *
 * A pid is only a number: once its process has died, the OS may give it to
 * another program, and a lock word that names it would look held forever.
 * Given the segment the pid was written into, a holder is also checked to
 * map that segment (on Linux, in /proc/PID/maps): a process that took a
 * lock or reserved a record there has it mapped, an unrelated program that
 * inherited the number has not. The check costs ~0.1-1 ms (tens of ms for
 * a process with tens of thousands of mappings), so it runs only when the
 * cached "yes" expires, and a process seen mapping the segment is then
 * vouched for by its start time for a while (kMapsTrustMs).
 *
 * Where a pid is not written into a segment its process must map (a pipe
 * end may be handed on and closed by the process that made it), the pid is
 * paired with its process's start time instead (startStamp): a later
 * program given the same pid started later.
 *
 * Exports: recentlyAlive, holderAlive, mapsSegment, startStamp, selfStamp,
 * sameProcessRuns, creatorGone, processState, kTrustMs.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { native } from './native';

export const kTrustMs = 200;
const aliveAt = new Map<number | string, number>();

export function recentlyAlive(pid: number, segmentName?: string): boolean {
  const key = segmentName === undefined ? pid : `${pid}:${segmentName}`;
  const now = performance.now();
  const seen = aliveAt.get(key);
  if (seen !== undefined && now - seen < kTrustMs) return true;
  if (segmentName === undefined ? !native.isAlive(pid) : !holderAlive(pid, segmentName)) {
    aliveAt.delete(key);
    return false;
  }
  if (aliveAt.size >= 4096) aliveAt.clear();
  aliveAt.set(key, now);
  return true;
}

/**
 * After a process was seen to map a segment, how long its start time alone
 * vouches for it (ms). /proc/PID/maps grows with every mapping its process
 * has: a helper's holder with 20,000 mapped Values cost each check 25 ms,
 * and each waiting process ~120 ms of CPU a second on its event loop (one
 * check per 200 ms slice). The start time (/proc/PID/stat, a few dozen
 * bytes) tells a recycled pid as surely; the maps are read again after this
 * long, so a live holder that has since unmapped the segment (closed the
 * lock it held) still counts as gone in the end.
 */
const kMapsTrustMs = 10_000;
const mappedBy = new Map<string, { stamp: number; at: number }>();

/** Whether pid runs and, where the OS says, maps the segment (see above and kMapsTrustMs). Not cached for kTrustMs as recentlyAlive is. */
export function holderAlive(pid: number, segmentName: string): boolean {
  if (!native.isAlive(pid)) return false;
  const key = `${pid}:${segmentName}`;
  const seen = mappedBy.get(key);
  const now = performance.now();
  if (seen !== undefined) {
    if (now - seen.at < kMapsTrustMs && startStamp(pid) === seen.stamp) return true;
    mappedBy.delete(key);
  }
  const maps = mapsSegment(pid, segmentName);
  if (maps === true) {
    const stamp = startStamp(pid);
    if (stamp !== null) {
      if (mappedBy.size >= 4096) mappedBy.clear();
      mappedBy.set(key, { stamp, at: now });
    }
  }
  return maps !== false;
}

/**
 * Whether process pid maps the shared memory segment `name` (with or
 * without its leading '/'): true, false, or null where that cannot be known
 * (not Linux, the segment cannot be stat'ed, or the process's maps are not
 * readable: another user's). Matched by the segment's inode, not by its
 * path: /proc/PID/maps prints paths as its reader's root and mounts resolve
 * them (/dev/shm may be a link, the reader chrooted), and a path that did
 * not match would make a live holder look gone.
 */
export function mapsSegment(pid: number, name: string): boolean | null {
  if (process.platform !== 'linux') return null;
  const file = name.startsWith('/') ? name.slice(1) : name;
  let ino: number;
  let maps: string;
  try {
    ino = statSync(`/dev/shm/${file}`).ino;
    maps = readFileSync(`/proc/${pid}/maps`, 'latin1');
  } catch {
    return null;
  }
  // Each line: address perms offset dev inode [path]. (An unrelated file with
  // the same inode number on another filesystem reads as "maps it": the safe side.)
  const inode = String(ino);
  for (const line of maps.split('\n')) {
    if (line.split(' ', 5)[4] === inode) return true;
  }
  return false;
}

/**
 * The start time of process pid in clock ticks since boot, as a non-zero
 * 32-bit number (/proc/PID/stat's 22nd field), or null where it cannot be
 * read: not Linux, or no such process.
 */
export function startStamp(pid: number): number | null {
  const fields = statFields(pid);
  return fields === null ? null : stampOf(fields);
}

function stampOf(fields: string[]): number | null {
  const ticks = Number(fields[19]);
  if (!Number.isFinite(ticks)) return null;
  return (ticks % 0xffffffff) + 1;
}

/** statFields' buffer: /proc/PID/stat is a few hundred bytes. */
const statBuf = Buffer.allocUnsafe(4096);

/**
 * /proc/PID/stat's text: one open, one read (the kernel writes the whole
 * file in one) and a close. readFileSync adds an fstat, a second read (a
 * /proc file says size 0) and buffers: ~25 µs a call against ~5, and every
 * start() reads the child's (Connection handOver's start stamp).
 */
function readStat(pid: number): string {
  const path = `/proc/${pid}/stat`;
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, statBuf, 0, statBuf.length, null);
  } finally {
    closeSync(fd);
  }
  return n < statBuf.length ? statBuf.toString('latin1', 0, n) : readFileSync(path, 'latin1');
}

/** /proc/PID/stat's fields from the 3rd on (fields[0] is the state), or null: not Linux, or no such process. */
function statFields(pid: number): string[] | null {
  if (process.platform !== 'linux') return null;
  let stat: string;
  try {
    stat = readStat(pid);
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * A process's state letter (R, S, T for stopped, Z for a zombie...) and, for
 * a zombie, the exit status its parent will read, as Process.exitCode does
 * (the code, or -N for signal N): /proc/PID/stat fields 3 and 52 (Linux
 * 3.5+). Null where there is no /proc, or no such process.
 */
export function processState(pid: number): { state: string; exitCode: number | null } | null {
  const fields = statFields(pid);
  if (fields === null) return null;
  const state = fields[0] ?? '';
  const status = Number(fields[49]);
  if (state !== 'Z' || !Number.isInteger(status)) return { state, exitCode: null };
  return { state, exitCode: (status & 0x7f) !== 0 ? -(status & 0x7f) : (status >> 8) & 0xff };
}

let self: { pid: number; stamp: number } | null = null;

/** This process's startStamp, or 0 where unknown (a fork child has its own: keyed by pid). */
export function selfStamp(): number {
  if (self === null || self.pid !== process.pid) self = { pid: process.pid, stamp: startStamp(process.pid) ?? 0 };
  return self.stamp;
}

/**
 * Whether the process (pid, stamp) is gone for good: no such pid, another
 * program's (a later start time), or a zombie waiting for its parent to
 * reap it (it runs no more code). Uncached.
 */
export function creatorGone(pid: number, stamp: number): boolean {
  if (!native.isAlive(pid)) return true;
  const fields = statFields(pid);
  if (fields === null) return false; // no /proc: alive as far as anyone can tell
  if (fields[0] === 'Z') return true;
  const now = stampOf(fields);
  return stamp !== 0 && now !== null && now !== stamp;
}

/**
 * Whether the process that wrote (pid, stamp) still runs: pid is alive and,
 * where both stamps are known, started when that process did. Uncached.
 */
export function sameProcessRuns(pid: number, stamp: number): boolean {
  if (!native.isAlive(pid)) return false;
  if (stamp === 0) return true;
  const now = startStamp(pid);
  return now === null || now === stamp;
}
