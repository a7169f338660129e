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
 * "Dead" is native.isAlive() saying no: no process has the pid, or it is a
 * zombie (killed, not yet reaped: it runs no more code). A pid recycled
 * since still counts as a holder: its references stay, as they did before
 * the table. Pids mean something only within one pid namespace: the header
 * records the creator's (kPidNsIndex), and a process of another one (a
 * handle passed by hand into a container) neither counts in the table nor
 * gives anything back (review helper-88: it took the creator's live pid for
 * a dead one and unlinked the segment under it).
 */
import { statSync } from 'node:fs';
import { kHolderSlots, kHoldersIndex, kPidNsIndex, kRefcountIndex } from './layout';
import { native } from './native';

let pidNs: number | undefined;

/** This process's pid namespace (the inode of /proc/self/ns/pid, as a 32-bit number), 0 where there is none to tell. */
export function pidNamespace(): number {
  if (pidNs === undefined) {
    try {
      pidNs = process.platform === 'linux' ? statSync('/proc/self/ns/pid').ino | 0 : 0;
    } catch {
      pidNs = 0;
    }
  }
  return pidNs;
}

/** Whether this process's pids mean the same as those in the table of `h`. */
function sameNamespace(h: Int32Array): boolean {
  return h[kPidNsIndex] === pidNamespace();
}

/**
 * Adds one to this process's slot in `h`, claiming a free one if it has
 * none; returns the count word's index, or -1 if the table is full (the
 * reference is then in no slot: kept until the tree ends if this process
 * dies holding it).
 */
export function holdSlot(h: Int32Array): number {
  if (!sameNamespace(h)) return -1;
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
  if (!sameNamespace(h)) return 'none';
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

/**
 * After this process let a reference go: gives back the dead holders'
 * references only when that unlinks the segment ('zero'), i.e. when every
 * reference left is in the slot of a process that is gone. Most releases
 * leave a live holder or a handle in flight: then it costs one pass over
 * the table and at most one kill(pid, 0), not one per holder (review
 * helper-88: 8 other holders made an attach + close of a Value 2x
 * slower). The dead holders' references wait for a release that can end
 * the segment, or for the tracker.
 */
export function giveBackIfAllDead(h: Int32Array): 'zero' | 'none' {
  if (!sameNamespace(h)) return 'none';
  const me = process.pid;
  let others = 0;
  for (let i = 0; i < kHolderSlots; i++) {
    const w = kHoldersIndex + 2 * i;
    const p = Atomics.load(h, w);
    if (p > 0 && p !== me) others += Atomics.load(h, w + 1);
  }
  const rc = Atomics.load(h, kRefcountIndex);
  // References in no other process's slot (this process's own, handles in
  // flight, holders past the table): the segment stays whatever the slots say.
  if (rc <= 0 || rc > others) return 'none';
  for (let i = 0; i < kHolderSlots; i++) {
    const w = kHoldersIndex + 2 * i;
    const p = Atomics.load(h, w);
    if (p > 0 && p !== me && Atomics.load(h, w + 1) > 0 && native.isAlive(p)) return 'none';
  }
  return giveBackDead(h) === 'zero' ? 'zero' : 'none';
}

/**
 * Pending slots: the references a parent's handles carry to a child that
 * does not exist yet (Process args). The parent fills a slot whose pid word
 * is a token (a negative number below -1, never a pid) with their count
 * before it starts the child; the child takes the whole slot over with one
 * CAS of token -> its pid when it attaches the first of them. Whichever
 * way a kill lands, every reference is then in exactly one slot: pending
 * (the parent gives it back when it learns of the exit: reclaimPending in
 * segment.ts) or the child's (given back as any dead holder's). Before,
 * the args of a child killed before it attached them stayed in /dev/shm
 * until the process tree ended. The other functions here skip pending
 * slots (pid word <= 0).
 */
export function reservePendingSlot(h: Int32Array, count: number): { word: number; token: number } | null {
  if (!sameNamespace(h)) return null;
  const token = -2 - Math.floor(Math.random() * 0x7ffffff0);
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < kHolderSlots; i++) {
      const w = kHoldersIndex + 2 * i;
      if (Atomics.load(h, w) === 0 && Atomics.compareExchange(h, w, 0, token) === 0) {
        Atomics.add(h, w + 1, count);
        return { word: w + 1, token };
      }
    }
    if (round === 0 && giveBackDead(h) === 'none') break;
  }
  return null;
}

/** In the child: takes the pending slot over (token -> this pid); false if it is not pending with that token. */
export function claimPendingSlot(h: Int32Array, countWord: number, token: number): boolean {
  if (!sameNamespace(h)) return false;
  return Atomics.compareExchange(h, countWord - 1, token, process.pid) === token;
}

/**
 * In the parent: empties a slot still pending with `token` (or, given the
 * pid of a child known to be gone, the slot that child took over) and frees it;
 * returns the count it held (0 if the child had taken it over), whose
 * references the caller gives back, or not (a start that failed gives
 * them back through the handles themselves).
 */
export function cancelPendingSlot(h: Int32Array, countWord: number, token: number): number {
  return Math.max(0, takePendingSlot(h, countWord, token));
}

/** cancelPendingSlot(), but -1 when the slot was not pending with `token` (taken over, or given back already). */
export function takePendingSlot(h: Int32Array, countWord: number, token: number): number {
  // -1 first, as giveBackDead: a process claiming the slot once it reads 0 must find its count at 0.
  if (Atomics.compareExchange(h, countWord - 1, token, -1) !== token) return -1;
  const c = Atomics.exchange(h, countWord, 0);
  Atomics.store(h, countWord - 1, 0);
  return c;
}
