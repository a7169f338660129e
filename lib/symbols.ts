/** Internal symbols shared between modules; none is part of the public API. */

/** Method that turns a shared object into a plain, cloneable handle (see reduction.ts). */
export const kToHandle: unique symbol = Symbol('multiproc.toHandle');
/** Property of every handle object naming its kind; a string key so it survives structured clone. */
export const kHandleTag = '__multiproc__';
/** Method that closes an object's mapping (used by dispose helpers). */
export const kSegment: unique symbol = Symbol('multiproc.segment');
/**
 * Method of a shared object told which process its handle went to (a child's
 * Process args), before that process attached it: see Connection.
 */
export const kSentTo: unique symbol = Symbol('multiproc.sentTo');
/**
 * On the prototype of objects that must not travel to another process (Pool,
 * Process): why, as the TypeError's message. Structured clone would copy
 * their public fields and deliver a useless {} (Python refuses to pickle them).
 */
export const kNotSendable: unique symbol = Symbol('multiproc.notSendable');
/** Connection method: unlink the pipe's segment now (Segment.unlinkNow). */
export const kUnlinkNow: unique symbol = Symbol('multiproc.unlinkNow');
/** Connection: false when the ring it reads is empty (a recvSync(0) would throw), without making that error. */
export const kMaybeUnread: unique symbol = Symbol('multiproc.maybeUnread');
/** Connection: takes what a dead peer never read (see connection.ts). */
export const kDrainUnread: unique symbol = Symbol('multiproc.drainUnread');
/** Connection: whether the peer has taken (or is taking: decoding) everything this end sent. */
export const kSentTaken: unique symbol = Symbol('multiproc.sentTaken');
/** Process method: start() without blocking the event loop while a forkserver child is forked (a Pool's replacement workers). */
export const kStartAsync: unique symbol = Symbol('multiproc.startAsync');
/**
 * Process property: SIGKILL it, not SIGTERM, when this process exits with it
 * still running (a pool's workers, which ignore SIGTERM: see pool-worker.ts).
 */
export const kKillAtExit: unique symbol = Symbol('multiproc.killAtExit');
/** Process: whether it was killed because its forkserver died, not by anything it did (see BasePopen.lostWithServer). */
export const kLostWithServer: unique symbol = Symbol('multiproc.lostWithServer');
/** Connection method: an Int32Array over the one pipe word free for its user (a pool worker's pipe: the job it is on). */
export const kUserWord: unique symbol = Symbol('multiproc.userWord');
/** Process: runs a callback once it has exited (join(timeout), wait()); one reaction on its exit however many watch. */
export const kOnExit: unique symbol = Symbol('multiproc.onExit');

/**
 * A pool job's id as that word holds it: positive and below 2^30 (ids grow
 * past 2^31 in a long-lived pool), so that its negative marks a kill.
 */
export function jobTag(id: number): number {
  return (id % 0x3fffffff) + 1;
}
