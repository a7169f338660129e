/**
 * The holder table of a segment's header (layout.ts): which process holds
 * how many of its references as attachments, so that the references of a
 * process that died without giving them back (SIGKILL, OOM) can be given
 * back by someone else, instead of keeping the segment until the whole
 * process tree ends.
 *
 * Safety rests on one invariant: a slot never counts more than its process
 * really holds. A process adds to its slot only after the reference exists
 * (created, or taken over from a handle whose delivery is final: see
 * segment.ts deferAdoptions), and takes from its slot before it gives the
 * reference back or hands it on. A death between the two steps leaves a
 * reference in no slot: kept until the tree ends, as before the table,
 * never given back twice. Handles in flight are in no slot at all.
 *
 * A slot: pid word (0 free, -1 being given back, else the holder's pid) and
 * count word. A process may end up with two slots (two of its threads
 * claiming at once); each attachment remembers the slot it counted in.
 * Only a holder's death frees its slot: a live holder at count 0 keeps it
 * (freeing it would race with another thread of the same process adding).
 *
 * "Dead" is `kill(pid, 0)` failing with ESRCH: no process has the pid.
 * A zombie (killed, not yet reaped by its parent) or a recycled pid still
 * counts as a holder: its references stay, as they did before the table.
 * Every process of a tree shares one pid namespace.
 */
import { kHolderSlots, kHoldersIndex, kRefcountIndex } from './layout';
import { native } from './native';

/**
 * Adds one to this process's slot in `h`, claiming a free one if it has
 * none; returns the count word's index, or -1 if the table is full (the
 * reference is then in no slot: kept until the tree ends if this process
 * dies holding it).
 */
export function holdSlot(h: Int32Array): number {
  const me = process.pid;
  for (let round = 0; round < 2; round++) {
    let free = -1;
    for (let i = 0; i < kHolderSlots; i++) {
      const w = kHoldersIndex + 2 * i;
      const p = Atomics.load(h, w);
      if (p === me) {
        Atomics.add(h, w + 1, 1);
        return w + 1;
      }
      if (p === 0 && free < 0) free = w;
    }
    for (let w = free; w >= 0 && w < kHoldersIndex + 2 * kHolderSlots; w += 2) {
      if (Atomics.compareExchange(h, w, 0, me) === 0) {
        Atomics.add(h, w + 1, 1);
        return w + 1;
      }
    }
    if (round === 0 && giveBackDead(h) === 'none') break; // nobody's slot came free
  }
  return -1;
}

/** Takes one from the slot holdSlot() counted in (before the reference itself goes). */
export function unholdSlot(h: Int32Array, countWord: number): void {
  if (countWord >= 0) Atomics.sub(h, countWord, 1);
}

/**
 * Gives back the references of every holder that no longer exists and
 * frees its slot: 'zero' if that brought the refcount to 0 (the caller
 * unlinks the name, as the last holder would have), 'some' if any slot was
 * freed, 'none' otherwise. Costs a kill(pid, 0) per other holder.
 */
export function giveBackDead(h: Int32Array): 'zero' | 'some' | 'none' {
  const me = process.pid;
  let freed: 'some' | 'none' = 'none';
  for (let i = 0; i < kHolderSlots; i++) {
    const w = kHoldersIndex + 2 * i;
    const p = Atomics.load(h, w);
    if (p <= 0 || p === me || native.isAlive(p)) continue;
    // Claimed with -1 first: a process claiming the slot once it reads 0
    // must find its count at 0, not the dead one's.
    if (Atomics.compareExchange(h, w, p, -1) !== p) continue; // another process is giving it back
    const c = Atomics.exchange(h, w + 1, 0);
    Atomics.store(h, w, 0);
    freed = 'some';
    if (c > 0 && Atomics.sub(h, kRefcountIndex, c) === c) return 'zero';
  }
  return freed;
}
