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
 * inherited the number has not. The check costs ~0.1-1 ms, so it runs only
 * when the cached "yes" expires.
 *
 * Exports: recentlyAlive, holderAlive, mapsSegment, kTrustMs.
 */
import { readFileSync } from 'node:fs';
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

/** Whether pid runs and, where the OS says, maps the segment (see above). Uncached. */
export function holderAlive(pid: number, segmentName: string): boolean {
  return native.isAlive(pid) && mapsSegment(pid, segmentName) !== false;
}

/**
 * Whether process pid maps the shared memory segment `name` (with or
 * without its leading '/'): true, false, or null where that cannot be known
 * (not Linux, or the process's maps are not readable: another user's).
 */
export function mapsSegment(pid: number, name: string): boolean | null {
  if (process.platform !== 'linux') return null;
  let maps: string;
  try {
    maps = readFileSync(`/proc/${pid}/maps`, 'latin1');
  } catch {
    return null;
  }
  // "/dev/shm/<name>", or "<name> (deleted)" once unlinked; the path ends the line either way.
  const path = `/dev/shm/${name.startsWith('/') ? name.slice(1) : name}`;
  for (let i = maps.indexOf(path); i >= 0; i = maps.indexOf(path, i + 1)) {
    const end = i + path.length;
    if (end === maps.length || maps[end] === '\n' || maps[end] === ' ') return true;
  }
  return false;
}
