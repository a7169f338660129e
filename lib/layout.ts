/**
 * The header every library-owned segment starts with (Value, arrays, locks,
 * queues...). Raw `SharedMemory` segments have no header, so that other
 * programs (Python's shared_memory) can share them byte for byte.
 *
 *   offset  size  field
 *   0       4     magic        kMagic ('MPRO' little-endian)
 *   4       2     version      kLayoutVersion; a mismatch refuses to attach
 *   6       2     kind         Kind.* below; attaching a Lock as a Queue fails
 *   8       8     payloadBytes bytes after the header (u32 lo, u32 hi)
 *   16      4     refcount     live attachments + handles in flight (Atomics)
 *   20      4     flags        kind-specific (Blob: kBlobPending)
 *   24      8     params       two kind-specific u32 (typecode, length, ...)
 *   32      4     trackerPid   the creating tree's resource tracker (0: unknown)
 *   36      4     trackerPipe  inode of that tracker's pipe, which every live
 *                              process of the tree holds open (0: unknown);
 *                              `multiproc doctor` judges a leftover by it
 *   40      4     pidNs        the creator's pid namespace (inode of
 *                              /proc/self/ns/pid; 0 where unknown): the
 *                              holder table's pids are of that namespace
 *   44      20    reserved     zero
 *   64      192   holders      kHolderSlots x (pid, count): the references
 *                              each process holds as attachments (see below)
 *   256     ...   payload      64-byte aligned, so it starts on its own cache line
 *
 * Holders: the refcount alone cannot tell whose references it counts, so a
 * process SIGKILLed while attached kept every segment it held until the
 * whole tree ended (a killed consumer's 1 MiB queue ring, after everyone
 * else had closed it). Each process also counts its attachments in a slot
 * of its own; a slot whose process is gone is given back by whoever finds
 * it (holders.ts). Handles in flight are in no slot: the refcount is
 * always at least the sum of the slots, so giving back a dead slot never
 * takes a live reference.
 */

export const kMagic = 0x4f52504d; // bytes 'M' 'P' 'R' 'O'
/**
 * 11: codec tags 0x16 and 0x17 (short strings and arrays, one-byte counts);
 * 10: codec tags 0x14 and 0x15 (arrays of numbers, packed); 9: an Event's flag and generation share one word (8 is skipped: builds of
 * the reverted take journal wrote it, with the old Event); 7: a Pipe's
 * holder tables take 24 identities per end (its own words 512 bytes);
 * 6: the holder table (header 256 bytes); 4: a Pipe's own words take two cache lines (128 bytes) before its rings;
 * 3: a JoinableQueue counts done tasks (word 67), not unfinished ones; 2: the
 * ring frontier word and codec tag 0x11. An older build would misread them.
 */
export const kLayoutVersion = 11;
export const kHeaderBytes = 256;

/** Int32 indices into the header (byte offset / 4). */
export const kMagicIndex = 0;
export const kVersionKindIndex = 1; // u16 version | u16 kind << 16
export const kPayloadLoIndex = 2;
export const kPayloadHiIndex = 3;
export const kRefcountIndex = 4;
export const kFlagsIndex = 5;
export const kParam0Index = 6;
export const kParam1Index = 7;
export const kTrackerPidIndex = 8;
export const kTrackerPipeIndex = 9;
/** The creator's pid namespace (holders.ts pidNamespace): the holder table's pids are of that namespace. */
export const kPidNsIndex = 10;
/** The holder table: slot i is words kHoldersIndex + 2i (pid; 0 free, -1 being given back) and + 2i + 1 (count). */
export const kHoldersIndex = 16;
export const kHolderSlots = 24;

/**
 * Blob flag: the segment's one reference is still its creator's own (the
 * record naming it is not yet in a ring). Set by Segment.create, cleared by
 * the writer just before it commits the record (channel.ts writeOne). A
 * creator that dies with it set (SIGKILLed mid-put: a pool worker killed by
 * terminate() while it sent a big result) leaves a segment nobody can ever
 * name: the resource tracker unlinks it then (tracker-main.ts), instead of
 * when the whole process tree ends.
 */
export const kBlobPending = 1;

export const enum Kind {
  Value = 1,
  Array = 2,
  Lock = 3,
  RLock = 4,
  Semaphore = 5,
  Condition = 6,
  Event = 7,
  Barrier = 8,
  Queue = 9,
  Pipe = 10,
  Pool = 11,
  Blob = 12, // one large item carried outside a ring
}

export const kindNames: Record<number, string> = {
  1: 'Value', 2: 'SharedArray', 3: 'Lock', 4: 'RLock', 5: 'Semaphore', 6: 'Condition',
  7: 'Event', 8: 'Barrier', 9: 'Queue', 10: 'Pipe', 11: 'Pool', 12: 'Blob',
};
