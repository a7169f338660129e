/**
 * Is a process still running? Every robust wait (a lock whose holder may
 * have died, a ring record whose producer may have died, a pipe peer) asks,
 * and the honest answer reads /proc (~25 µs here): too slow for every step
 * of a hot path. recentlyAlive trusts a "yes" for kTrustMs, so a process that
 * died in the last kTrustMs may count as alive once more; callers wait in
 * slices of that length anyway.
 *
 * Exports: recentlyAlive, kTrustMs.
 */
import { native } from './native';

export const kTrustMs = 200;
const aliveAt = new Map<number, number>();

export function recentlyAlive(pid: number): boolean {
  const now = performance.now();
  const seen = aliveAt.get(pid);
  if (seen !== undefined && now - seen < kTrustMs) return true;
  if (!native.isAlive(pid)) {
    aliveAt.delete(pid);
    return false;
  }
  if (aliveAt.size >= 4096) aliveAt.clear();
  aliveAt.set(pid, now);
  return true;
}
