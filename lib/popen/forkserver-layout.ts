/**
 * The forkserver board: a small shared memory segment between one parent
 * and its zygote (Int32 indices; byte offset = index * 4).
 *
 *   index  field        writer  meaning
 *   0      replySeq     zygote  seq of the last request handled
 *   1      replyPid     zygote  pid forked for it (-1: fork failed)
 *   2      ready        zygote  1 once it serves requests (startForkserver() waits on it)
 *   3      cancelSeq    parent  a request it gave up on (the zygote was stopped): not to be forked
 *   16     ringWrite    zygote  exit records written so far (own cache line)
 *   32     ringRead     parent  exit records consumed so far (own cache line)
 *   48     bellRung     both    1 while a doorbell byte is unread: the zygote
 *                               rings only on 0 -> 1, the parent's reader sets 0
 *   64..   ring         zygote  kRingCapacity records of [pid, code|-1, signal|0, 0]
 *
 * The parent waits on replySeq (futex) after each request, so start() is
 * synchronous and p.pid is known when it returns (a Pool's replacement
 * workers wait on it with waitAsync instead). One reply slot: the parent
 * has at most one request out at a time. The ring is single
 * producer (the zygote's SIGCHLD reaper) / single consumer (the parent);
 * a full ring makes the zygote wait on ringRead. The parent learns of new
 * records from a doorbell byte on a socket (async) or by waiting on
 * ringWrite (joinSync), so a blocked event loop never loses an exit. At
 * most one doorbell byte is ever unread (bellRung): a parent that only
 * joins synchronously never reads the socket, and a byte per exit filled
 * its buffer until the zygote blocked in its write and served no one.
 */
export const kReplySeq = 0;
export const kReplyPid = 1;
export const kReady = 2;
export const kCancelSeq = 3;
export const kRingWrite = 16;
export const kRingRead = 32;
export const kBellRung = 48;
export const kRingStart = 64;
export const kRingRecordInts = 4;
export const kRingCapacity = 1024;
export const kBoardBytes = (kRingStart + kRingCapacity * kRingRecordInts) * 4;

export const kBoardEnv = 'MULTIPROC_FORKSERVER_BOARD';
export const kPreloadEnv = 'MULTIPROC_FORKSERVER_PRELOAD';
export const kSparesEnv = 'MULTIPROC_FORKSERVER_SPARES';
