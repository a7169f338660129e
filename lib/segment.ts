/**
 * Segments that hold library objects (Value, SharedArray, locks, queues...):
 * a POSIX shm segment with the header of layout.ts, reference counted so that
 * the name is unlinked as soon as the last user is done with it.
 *
 * Reference counting across processes: the header's refcount counts live
 * attachments plus handles in flight. Turning an object into a handle (to put
 * it on a queue, pass it to a child...) adds one; attaching from that handle
 * adopts it instead of adding another. close() (or GC of the owning object)
 * subtracts one; whoever brings it to zero unlinks the name. Each process
 * also counts its attachments in the header's holder table (holders.ts): the
 * references of a process killed before close() are given back by the next
 * process that releases one of its own, or by the tracker after a child is
 * killed. A handle that is never received leaves the count high: then the
 * tree's resource tracker unlinks the segment when the tree ends.
 */
import { constants } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { ClosedError, shmError } from './errors';
import {
  Kind, kBlobPending, kFlagsIndex, kHeaderBytes, kindNames, kLayoutVersion, kMagic, kMagicIndex, kParam0Index, kParam1Index,
  kPayloadHiIndex, kPayloadLoIndex, kPidNsIndex, kRefcountIndex, kTrackerPidIndex, kTrackerPipeIndex, kVersionKindIndex,
} from './layout';
import { cancelPendingSlot, claimPendingSlot, giveBackDead, giveBackIfAllDead, holdSlot, pidNamespace, reservePendingSlot, takePendingSlot, unholdSlot } from './holders';
import { selfStamp } from './liveness';
import { native } from './native';
import { fromHandle, referencesOf, type Handle } from './reduction';
import { register, trackerPipeInode, trackerProcessId, unregister } from './resource-tracker';
import { forkGeneration, nativeWaitsOn } from './wait';

let warnedPrefix: string | undefined;

/** Prefix of generated names; MULTIPROC_SHM_PREFIX (1-8 chars of [A-Za-z0-9_]) overrides it. */
function namePrefix(): string {
  const p = process.env.MULTIPROC_SHM_PREFIX;
  if (p === undefined || p === '') return 'mp';
  if (/^[A-Za-z0-9_]{1,8}$/.test(p)) return p;
  // Said once per value: a leak check that greps /dev/shm for its own prefix
  // would otherwise find nothing and pass without a word.
  if (warnedPrefix !== p) {
    warnedPrefix = p;
    process.emitWarning(`MULTIPROC_SHM_PREFIX=${JSON.stringify(p)} is not 1-8 characters of [A-Za-z0-9_]; segments are named "mp-..." instead`, {
      code: 'MULTIPROC_SHM_PREFIX',
    });
  }
  return 'mp';
}

/**
 * An unguessable segment name of at most 30 characters (macOS's limit is 31
 * with the leading '/'): prefix, '-', 16 characters (96 random bits).
 */
export function generateName(): string {
  return `${namePrefix()}-${randomBytes(12).toString('base64url')}`;
}

/**
 * MULTIPROC_SHM_AUDIT=<file>: every segment a process of the tree creates is
 * appended to the file, one OS name a line. A leak check for systems whose
 * segments cannot be listed (macOS has no /dev/shm); the test suite uses it.
 */
const auditFile = process.env.MULTIPROC_SHM_AUDIT;

/**
 * The largest mapping Node lets JavaScript see: a segment is one ArrayBuffer,
 * and Node 20 refuses external ones over 4 GiB (buffer.constants.MAX_LENGTH).
 */
export const kMaxSegmentBytes = constants.MAX_LENGTH;

/** Creates the segment `osname` (see native.shmCreate), recording it for MULTIPROC_SHM_AUDIT. */
export function createSegment(osname: string, size: number): ArrayBuffer {
  // Refused before the OS reserves the space (the native side would reserve
  // it, fail to wrap it, and give it back).
  if (size > kMaxSegmentBytes) {
    throw Object.assign(
      new RangeError(`Cannot create ${size} bytes of shared memory in one segment: this Node.js maps at most ${kMaxSegmentBytes} bytes into one ArrayBuffer. Use several smaller segments.`),
      { code: 'ERR_MULTIPROC_MAPPING_TOO_LARGE' },
    );
  }
  const buffer = native.shmCreate(osname, size);
  if (auditFile) appendFileSync(auditFile, `${osname}\n`);
  return buffer;
}

/** The name as the OS wants it: one leading '/'. */
export function osName(name: string): string {
  return name.startsWith('/') ? name : `/${name}`;
}

const finalizer = new FinalizationRegistry<SegmentState>((state) => releaseState(state));

interface SegmentState {
  name: string;
  header: Int32Array;
  released: boolean;
  /** The fork generation it was made in (see releaseState). */
  gen: number;
  /** The holder-table count word this attachment is counted in (holders.ts), -1 for none. */
  slot: number;
  /** This process unlinked the name (its release gave back the last reference, or unlinkNow). */
  unlinked?: boolean;
}

/** The attachments of this process not yet released (see releaseAllAttachments). */
let liveStates = new Set<SegmentState>();
/**
 * The same, by segment name: a handle's reference given back through a
 * mapping this process has (dropHandleReference), or a child's args'
 * pending slots (liveHeader), found without a walk of every attachment
 * (bench/receive-held.mjs: a process holding 10,000 other segments took
 * ~250 us to receive a Value it had already, ~10 us with none).
 */
// (Sets: many Values sharing one Lock each attach it, and closing them in
// turn made an array's indexOf + splice quadratic: review helper-97.)
let liveByName = new Map<string, Set<SegmentState>>();

function addLive(state: SegmentState): void {
  liveStates.add(state);
  const set = liveByName.get(state.name);
  if (set === undefined) liveByName.set(state.name, new Set([state]));
  else set.add(state);
}

function deleteLive(state: SegmentState): void {
  if (!liveStates.delete(state)) return;
  const set = liveByName.get(state.name);
  if (set !== undefined && set.delete(state) && set.size === 0) liveByName.delete(state.name);
}

/** One reference fewer in the segment's header; the name goes with the last. */
function unretainHeader(name: string, header: Int32Array): void {
  if (Atomics.sub(header, kRefcountIndex, 1) === 1) unlinkName(name);
}

function unlinkName(name: string): void {
  native.shmUnlink(osName(name));
  unregister(osName(name), 'object');
}

/** Counts the attachment in this process's holder slot (see holders.ts). */
function hold(state: SegmentState): void {
  if (state.slot < 0 && state.header.length > 0) state.slot = holdSlot(state.header);
}

/** Before its reference goes (given back, or handed on): out of the holder slot. */
function unhold(state: SegmentState): void {
  if (state.slot < 0) return;
  unholdSlot(state.header, state.slot);
  state.slot = -1;
}

/**
 * Attachments taken over from handles during a ring take (see
 * deferAdoptions), not yet counted in this process's holder slot.
 */
const unheld: SegmentState[] = [];
let deferring = 0;

/**
 * Around a take from a ring: the handles of the record it decodes are
 * counted as this process's attachments only once the take is done (the
 * record consumed). A consumer killed between the decode and the move of
 * head leaves the record, and its handles' references, to the next
 * consumer: had the dead one counted them in its slot, they would be given
 * back twice. Paired with endDeferAdoptions in a finally.
 */
export function deferAdoptions(): void {
  deferring++;
}

/** After the take (the record consumed, or the take failed): the attachments it made are this process's. */
export function endDeferAdoptions(): void {
  if (--deferring !== 0) return;
  adoptionsFinal();
}

/**
 * Within a take of several records (getMany), after each one is consumed:
 * what it adopted is this process's and what it dropped goes now, not when
 * the whole batch is done. A consumer killed while it decoded a later record
 * had the earlier ones' objects in no slot (consumed, so no other consumer
 * would take them again), and they stayed until the tree ended.
 */
export function recordConsumed(): void {
  if (deferring === 1) adoptionsFinal();
}

function adoptionsFinal(): void {
  if (unheld.length !== 0) for (const s of unheld.splice(0)) if (!s.released) hold(s);
  if (drops.length !== 0) {
    for (const d of drops.splice(0)) {
      try {
        d();
      } catch {
        // A give-back that failed (an unlink refused) leaks that reference;
        // thrown here it lost the rest, and the item the take returned (review helper-92).
      }
    }
  }
}

/**
 * Handle references given back during a take (a handle of an object this
 * process has already, or of one whose build failed): only once the record
 * is consumed, as the adoptions are. A consumer killed before that leaves
 * the record, and those references, to the next consumer, who gives them
 * back or adopts them in its turn: given back at once, they were given back
 * twice, and the segment was unlinked under its live holders (review
 * helper-88: 22 of 30 consumers killed at random).
 */
const drops: (() => void)[] = [];
function dropLater(fn: () => void): void {
  if (deferring > 0) drops.push(fn);
  else fn();
}

function releaseState(state: SegmentState): void {
  if (state.released) return;
  state.released = true;
  deleteLive(state);
  // An object a child made by fork() inherited: its reference is the
  // parent's, and closing (or collecting) the child's copy must not give it
  // back, as closing a copied file descriptor leaves the parent's open.
  if (state.gen !== forkGeneration()) return;
  const header = state.header;
  if (header.length === 0) return; // already detached
  unhold(state);
  // An attachment's end is when holders that died are looked for: not every
  // unretain (a pool task's handle of an object its worker has already
  // would pay a kill(pid, 0) per other holder).
  if (Atomics.sub(header, kRefcountIndex, 1) === 1 || giveBackIfAllDead(header) === 'zero') {
    unlinkName(state.name);
    state.unlinked = true;
  }
}

export class Segment {
  readonly name: string;
  readonly kind: Kind;
  readonly buffer: ArrayBuffer;
  readonly payloadBytes: number;
  /** Int32 view over the header (kHeaderBytes). */
  readonly header: Int32Array;
  readonly #state: SegmentState;

  private constructor(name: string, kind: Kind, buffer: ArrayBuffer, payloadBytes: number) {
    this.name = name;
    this.kind = kind;
    this.buffer = buffer;
    this.payloadBytes = payloadBytes;
    this.header = new Int32Array(buffer, 0, kHeaderBytes / 4);
    this.#state = { name, header: this.header, released: false, gen: forkGeneration(), slot: -1 };
    addLive(this.#state);
  }

  /**
   * Creates a fresh segment with `payloadBytes` after the header; refcount 1.
   * A Blob is made pending (kBlobPending): registered with this process as
   * its creator, so that the tracker unlinks it if this process dies before
   * publish() (see layout.ts).
   */
  static create(kind: Kind, payloadBytes: number, params: [number, number] = [0, 0]): Segment {
    const name = generateName();
    const pending = kind === Kind.Blob;
    // Registered before it exists: a process killed between the two would
    // otherwise leave a segment no tracker knows about.
    register(osName(name), 'object', pending ? { pid: process.pid, stamp: selfStamp() } : undefined);
    let buffer: ArrayBuffer;
    try {
      buffer = createSegment(osName(name), kHeaderBytes + Math.max(payloadBytes, 0));
    } catch (e) {
      unregister(osName(name), 'object');
      throw shmError(e, name, `create a ${kindNames[kind]}`);
    }
    const seg = new Segment(name, kind, buffer, payloadBytes);
    const h = seg.header;
    h[kVersionKindIndex] = kLayoutVersion | (kind << 16);
    h[kPayloadLoIndex] = payloadBytes >>> 0;
    h[kPayloadHiIndex] = Math.floor(payloadBytes / 2 ** 32);
    h[kParam0Index] = params[0];
    h[kParam1Index] = params[1];
    if (pending) h[kFlagsIndex] = kBlobPending;
    h[kTrackerPidIndex] = trackerProcessId();
    h[kTrackerPipeIndex] = trackerPipeInode();
    h[kPidNsIndex] = pidNamespace();
    Atomics.store(h, kRefcountIndex, 1);
    Atomics.store(h, kMagicIndex, kMagic); // last: a half-made segment fails the magic check
    hold(seg.#state);
    return seg;
  }

  /**
   * Attaches to an existing segment and checks that it is what the caller
   * expects. `adopt` takes over the reference of a handle in flight instead
   * of adding one.
   */
  static attach(name: string, kind: Kind, adopt: boolean): Segment {
    let buffer: ArrayBuffer;
    try {
      buffer = native.shmAttach(osName(name));
    } catch (e) {
      throw shmError(e, name, `attach a ${kindNames[kind]}`);
    }
    const fail = (why: string): never => {
      native.detach(buffer);
      throw new Error(`Shared memory segment '${name}' is not a multiproc ${kindNames[kind]}: ${why}`);
    };
    if (buffer.byteLength < kHeaderBytes) fail(`it is ${buffer.byteLength} bytes, smaller than the ${kHeaderBytes}-byte header`);
    const h = new Int32Array(buffer, 0, kHeaderBytes / 4);
    if (Atomics.load(h, kMagicIndex) !== kMagic) fail('bad magic number (foreign or unfinished segment)');
    const version = h[kVersionKindIndex] & 0xffff;
    if (version !== kLayoutVersion) fail(`layout version ${version}, this build reads version ${kLayoutVersion} (mixed multiproc versions?)`);
    const actualKind = h[kVersionKindIndex] >>> 16;
    if (actualKind !== kind) fail(`it holds a ${kindNames[actualKind] ?? `kind ${actualKind}`}`);
    const payloadBytes = (h[kPayloadLoIndex] >>> 0) + (h[kPayloadHiIndex] >>> 0) * 2 ** 32;
    if (kHeaderBytes + payloadBytes > buffer.byteLength) fail(`truncated: header says ${payloadBytes} payload bytes, segment has ${buffer.byteLength - kHeaderBytes}`);
    const seg = new Segment(name, kind, buffer, payloadBytes);
    const pending = adopt ? pendingWord(name, h) : -1;
    if (!adopt || pending === kGivenBack) Atomics.add(h, kRefcountIndex, 1);
    if (pending >= 0) seg.#state.slot = pending; // counted there by the parent (see adoptingArgs)
    else if (adopt && deferring > 0) unheld.push(seg.#state);
    else hold(seg.#state);
    return seg;
  }

  param(i: 0 | 1): number {
    return this.header[i === 0 ? kParam0Index : kParam1Index];
  }

  /** Byte offset of the payload inside `buffer`. */
  get payloadOffset(): number {
    return kHeaderBytes;
  }

  get closed(): boolean {
    return this.#state.released;
  }

  /** Current reference count (attachments + handles in flight, all processes). */
  refcount(): number {
    return this.#state.released ? 0 : Atomics.load(this.header, kRefcountIndex);
  }

  /**
   * refcount() once the references of holders that no longer exist are
   * given back (holders.ts): what "is anyone else still there?" asks.
   */
  livingRefcount(): number {
    if (this.#state.released) return 0;
    giveBackDead(this.header); // never to 0: this process's own reference is counted
    return Atomics.load(this.header, kRefcountIndex);
  }

  /** One more reference, for a handle about to travel to another process. */
  retain(): void {
    if (this.#state.released) throw new ClosedError(`${kindNames[this.kind]} '${this.name}' is closed`);
    Atomics.add(this.header, kRefcountIndex, 1);
  }

  /**
   * A Blob's reference leaves this process's hands (the record naming it is
   * about to be committed): from now on a death of its creator no longer
   * makes it garbage (see kBlobPending).
   */
  publish(): void {
    Atomics.store(this.header, kFlagsIndex, 0);
  }

  /** Drops a reference taken by retain() whose handle will never be received. */
  unretain(): void {
    unretainHeader(this.name, this.header);
  }

  /**
   * Stops counting this as an attachment of this process, without giving
   * anything back: its reference went another way (a blob's travels with its
   * record; a read blob's was unretained). Tracked on, its state kept the
   * mapping alive for good (liveStates holds the header's view): 50 MB of
   * /dev/shm for 50 1 MB Buffers received.
   */
  forget(): void {
    if (!this.#state.released && this.#state.gen === forkGeneration()) unhold(this.#state); // first: see holders.ts
    this.#state.released = true;
    deleteLive(this.#state);
  }

  /**
   * Removes the name now, whatever the count says: for an owner that knows no
   * process will attach it again (a pool's pipe to a worker that died
   * holding its reference, which would keep it until the tree ends).
   */
  unlinkNow(): void {
    // Unlinked here already (a Pool's worker pipe, closed just before: its
    // dead worker's reference given back): a second unlink and tracker
    // message would only wake the tracker for nothing.
    if (this.#state.unlinked === true) return;
    native.shmUnlink(osName(this.name));
    unregister(osName(this.name), 'object');
    this.#state.unlinked = true;
  }

  /** Releases this attachment when `owner` is garbage collected. */
  bindTo(owner: object): void {
    finalizer.register(owner, this.#state, this);
  }

  /**
   * Drops this attachment's reference (unlinking at zero) and detaches the
   * buffer. Idempotent. The mapping goes at once unless one of this process's
   * native waits may still sleep on it (then at GC, see native/shm.cc):
   * left to GC, a loop that made and closed queues without a turn of the
   * event loop (Node runs those finalizers from setImmediate) held every
   * one of them mapped, 1 GB of /dev/shm for 1,000 queues, and could
   * exhaust the process's map count.
   */
  close(): void {
    if (this.#state.released) return;
    finalizer.unregister(this);
    releaseState(this.#state);
    if (nativeWaitsOn(this.buffer)) native.detach(this.buffer);
    else native.unmap(this.buffer);
  }
}

/**
 * A child ending gives back every reference it still holds, as its objects'
 * finalizers would if they ran: what a task or target kept, or what the
 * child's last GC left attached. The mappings stay (the process is ending).
 * Without it each such segment stayed until the whole tree ended.
 */
export function releaseAllAttachments(): void {
  for (const state of [...liveStates]) releaseState(state);
}

/**
 * Before fork() ('fork' start method): one more reference for every segment
 * attached here, the child's own (it gives them back when it closes its
 * copies or ends), as fork() duplicates file descriptors: a Value the parent
 * closed was otherwise unlinked under a child still using it. They are
 * counted in pending slots (see reservePending), which the child takes over
 * in adoptInheritedAttachments: a child killed before that no longer keeps
 * them until the tree ends. The references of the child's args (`args`:
 * the handles reduceForFork took) go in the same slot as the copies of
 * their segment: one slot per segment and child, as before the pending
 * slots (a slot each took two, and a table of 24 slots counted only 11
 * such children). Returns those slots (for Popen.watchPending and the
 * child's adoptingArgs) and the undo, for a fork that failed (which gives
 * back the copies' references; the args' are the caller's to release).
 */
export function duplicateForFork(args: readonly Handle[] = []): { pending: PendingSlot[]; undo: () => void } {
  const gen = forkGeneration();
  const taken = [...liveStates].filter((s) => s.gen === gen && s.header.length > 0);
  const counts = new Map<string, { header: Int32Array; n: number }>();
  for (const s of taken) {
    Atomics.add(s.header, kRefcountIndex, 1);
    const c = counts.get(s.name);
    if (c === undefined) counts.set(s.name, { header: s.header, n: 1 });
    else c.n++;
  }
  // A segment named by the args and not held here (no mapping of this
  // process's) gets no slot, as in reservePending.
  for (const [name, n] of args.length > 0 ? referencesOf(args) : []) {
    const c = counts.get(name);
    if (c !== undefined) c.n += n;
  }
  const pending: PendingSlot[] = [];
  for (const [name, { header, n }] of counts) {
    const r = reservePendingSlot(header, n);
    if (r !== null) pending.push({ name, ...r });
  }
  // What the child (a copy of this memory) takes over; the parent forgets it once fork() returned.
  forkCopies = { states: new Set(taken), pending };
  return {
    pending,
    undo: () => {
      cancelPending(pending);
      for (const s of taken) unretainHeader(s.name, s.header);
    },
  };
}

/**
 * In a 'fork' child: the slots adoptInheritedAttachments took over, by
 * segment name; its args count in them too (duplicateForFork), so
 * adoptingArgs finds them taken over already (by this process).
 */
const forkClaimed = new Map<string, number>();

/** Between duplicateForFork and the fork (in the child: until adoptInheritedAttachments): what the child is to take over. */
let forkCopies: { states: Set<SegmentState>; pending: PendingSlot[] } | null = null;

/** In the parent, once fork() has returned (or failed). */
export function forkDone(): void {
  forkCopies = null;
}

/** In a 'fork' child: the attachments it copied are its own (duplicateForFork counted them for it). */
export function adoptInheritedAttachments(): void {
  const gen = forkGeneration();
  const copies = forkCopies;
  forkCopies = null;
  const words = new Map<string, number>();
  const slots = new Map(copies?.pending.map((p) => [p.name, p]));
  forkClaimed.clear();
  for (const s of liveStates) {
    s.gen = gen;
    s.slot = -1; // the parent's slot: this process counts in its own
    if (copies?.states.has(s) === true) {
      let w = words.get(s.name);
      if (w === undefined) {
        const p = slots.get(s.name);
        w = p !== undefined && claimPendingSlot(s.header, p.word, p.token) ? p.word : -1;
        words.set(s.name, w);
        if (w >= 0) forkClaimed.set(s.name, w);
      }
      if (w >= 0) {
        s.slot = w; // counted there by the parent
        continue;
      }
    }
    hold(s);
  }
  unheld.length = 0;
  drops.length = 0;
  deferring = 0;
}

/**
 * In a forkserver child: the attachments copied from the zygote are the
 * zygote's references, not this process's to give back.
 */
export function forgetInheritedAttachments(): void {
  liveStates = new Set();
  liveByName = new Map();
  unheld.length = 0;
  drops.length = 0;
  deferring = 0;
  attached.clear(); // received again here, an object is this process's own attachment
}

/*
 * Per-process cache of attached objects by segment name, so that receiving
 * the same Value a thousand times maps it once. Entries hold the object
 * weakly and vanish when it is collected.
 */
interface CacheEntry {
  ref: WeakRef<object>;
  segment: Segment;
}
const attached = new Map<string, CacheEntry>();
const attachedCleanup = new FinalizationRegistry<string>((name) => {
  const e = attached.get(name);
  if (e !== undefined && e.ref.deref() === undefined) attached.delete(name);
});

/**
 * Attaches the object a handle names, adopting the handle's reference; if
 * this process already has that object, returns it and drops the reference.
 * `build` wraps a freshly attached segment (and must call segment.bindTo).
 */
export function attachShared<T extends object>(name: string, kind: Kind, build: (segment: Segment) => T): T {
  const cache = privateCache ?? attached;
  const hit = cache.get(name);
  const obj = hit?.ref.deref();
  if (hit !== undefined && obj !== undefined && !hit.segment.closed) {
    const seg = hit.segment;
    const pending = pendingWord(name, seg.header);
    if (pending === kGivenBack) return obj as T; // the handle carries no reference any more
    dropLater(() => {
      if (pending >= 0) unholdSlot(seg.header, pending);
      seg.unretain();
    });
    return obj as T;
  }
  let segment: Segment | undefined;
  const made = attachOwn(name, kind, (seg) => build((segment = seg)));
  cache.set(name, { ref: new WeakRef(made), segment: segment! });
  if (cache === attached) {
    attachedCleanup.register(made, name);
    fresh?.push(made);
  }
  return made;
}

/** While set, the objects attachShared() builds afresh for the process's cache (see collectFresh). */
let fresh: object[] | null = null;

/**
 * Runs fn (a rebuild of handles), listing in `list` the objects it attached
 * afresh, as opposed to those this process already had (whose handles'
 * references were given back on the spot). Handles nobody will receive (a
 * failed send) are given back by disposing those at once: left to GC, a
 * 128 MiB SharedArray stayed in /dev/shm after its owner closed it.
 */
export function collectFresh<T>(list: object[], fn: () => T): T {
  const outer = fresh;
  fresh = list;
  try {
    return fn();
  } finally {
    fresh = outer;
  }
}

function attachOwn<T extends object>(name: string, kind: Kind, build: (segment: Segment) => T): T {
  const segment = Segment.attach(name, kind, true);
  let made: T;
  try {
    made = build(segment);
  } catch (e) {
    dropLater(() => segment.close()); // its handle's reference: as a cache hit's (see deferAdoptions)
    throw e;
  }
  attaches++;
  attachedBytes += segment.buffer.byteLength;
  return made;
}

let attaches = 0;
let attachedBytes = 0;

/** How many objects (and bytes of segment) this process has attached from handles so far (not counting those it had already). */
export function attachCount(): { objects: number; bytes: number } {
  return { objects: attaches, bytes: attachedBytes };
}

/**
 * attachShared() for an object whose handle carries its lock's handle
 * (Value, SharedArray, Condition). The lock is attached privately (see
 * attachPrivately), to be closed with the object, only when the object is
 * built here; when this process has the object already, the reference the
 * lock's handle carried is given back through a mapping this process has of
 * it, without a new one (an attach is four system calls: ~130 us a task for
 * a pool task that received a Value).
 */
export function attachWithLock<T extends object, L extends { close(): void }>(
  name: string,
  kind: Kind,
  lock: Handle | null,
  build: (segment: Segment, lock: L | null) => T,
): T {
  const made: { lock: L | null; used: boolean } = { lock: null, used: false };
  try {
    const obj = attachShared(name, kind, (seg) => {
      made.lock = lock === null ? null : (attachPrivately(() => fromHandle(lock)) as L);
      const o = build(seg, made.lock);
      made.used = true;
      return o;
    });
    if (!made.used && lock !== null) dropHandleReference(lock);
    return obj;
  } catch (e) {
    const own = made.lock;
    if (own !== null) dropLater(() => own.close());
    else if (lock !== null) dropHandleReference(lock);
    throw e;
  }
}

/** Gives back the reference a handle carried, through a live mapping of its segment if this process has one. */
function dropHandleReference(h: Handle): void {
  for (const s of liveByName.get(h.name) ?? []) {
    if (s.header.length > 0) {
      const { name, header } = s;
      const pending = pendingWord(name, header);
      if (pending === kGivenBack) return; // the handle carries no reference any more
      dropLater(() => {
        if (pending >= 0) unholdSlot(header, pending);
        unretainHeader(name, header);
      });
      return;
    }
  }
  const obj = attachPrivately(() => fromHandle(h)) as { close?: () => void };
  dropLater(() => obj.close?.());
}

/** The cache attachShared() uses inside attachPrivately(), instead of the process's. */
let privateCache: Map<string, CacheEntry> | null = null;

/**
 * Runs attach() (a fromHandle()) with a cache of its own instead of the
 * process's: what it builds are mappings of the caller's own, which the
 * caller closes when it is done, and a handle that comes twice within it
 * still gives one object. For the lock inside a received Value,
 * SharedArray or Condition (closing the cached lock would close it under
 * anyone else in this process who received the same lock, and never
 * closing it kept its segment in /dev/shm until GC, which a small child may
 * never run), and for a fork child's args (the cached objects there are
 * the parent's).
 */
export function attachPrivately<T>(attach: () => T): T {
  const outer = privateCache;
  privateCache = new Map();
  try {
    return attach();
  } finally {
    privateCache = outer;
  }
}

/**
 * A holder slot the parent filled, before the child existed, with the
 * references its args' handles carry (holders.ts reservePendingSlot): sent
 * with the spec, taken over by the child as it attaches them, given back by
 * the parent if the child ends without having done so.
 */
export interface PendingSlot {
  readonly name: string;
  /** The slot's count word. */
  readonly word: number;
  readonly token: number;
}

/** This process's live mapping of `name`'s header, if it has one. */
function liveHeader(name: string): Int32Array | null {
  const gen = forkGeneration();
  for (const s of liveByName.get(name) ?? []) if (s.gen === gen && s.header.length > 0) return s.header;
  return null;
}

/**
 * In the parent, for the handles reduce() took for a child's args: a
 * pending slot per segment with their count. A segment whose table is full
 * (or that this process has no mapping of) gets none: its references are
 * then in no slot until the child attaches them, as before.
 */
export function reservePending(handles: readonly Handle[]): PendingSlot[] {
  const slots: PendingSlot[] = [];
  if (handles.length === 0) return slots;
  for (const [name, count] of referencesOf(handles)) {
    const header = liveHeader(name);
    const r = header === null ? null : reservePendingSlot(header, count);
    if (r !== null) slots.push({ name, ...r });
  }
  return slots;
}

/**
 * Runs fn with the header of `name`: this process's mapping, or a mapping
 * made for the purpose if its own was closed since (unmapped after). Not
 * run if the name is gone (its references were all given back).
 */
function withHeader(name: string, fn: (header: Int32Array) => void): void {
  const own = liveHeader(name);
  if (own !== null) {
    fn(own);
    return;
  }
  let mapped: ArrayBuffer;
  try {
    mapped = native.shmAttach(osName(name));
  } catch {
    return;
  }
  try {
    if (mapped.byteLength < kHeaderBytes) return;
    const header = new Int32Array(mapped, 0, kHeaderBytes / 4);
    if (Atomics.load(header, kMagicIndex) === kMagic) fn(header);
  } finally {
    native.unmap(mapped);
  }
}

/**
 * A start that failed: the slots are emptied (the caller gives the handles'
 * references back itself). Through a mapping made for the purpose where this
 * process closed its own meanwhile (an async start's await): left pending,
 * a slot stayed taken, and the table one slot short, for the segment's life.
 * Returns the slots that were no longer pending: a child took them over
 * (see releasingUnsent).
 */
export function cancelPending(slots: readonly PendingSlot[] | undefined): PendingSlot[] {
  const lost: PendingSlot[] = [];
  for (const s of slots ?? []) {
    withHeader(s.name, (header) => {
      if (takePendingSlot(header, s.word, s.token) < 0) lost.push(s);
    });
  }
  return lost;
}

/**
 * A start that failed while its child in fact ran (a zygote that died, or
 * was stopped, after its fork and before its reply): the child may have
 * taken some slots over, counting their references as its own, given back
 * when it dies. `fn` releases the args' handles; those of a segment whose
 * slot is in `lost` are treated as carrying no reference (as a child treats
 * the handles of a slot given back before it came: see pendingWord). Given
 * back by the parent too, they were given back twice, and the segment was
 * unlinked under its holders.
 */
export function releasingUnsent(lost: readonly PendingSlot[], fn: () => void): void {
  // Their tokens are gone from the slots: every claim fails, so pendingWord says kGivenBack.
  adoptingArgs(lost, fn);
}

/**
 * Once the child has exited: the references of every slot it never took
 * over are given back (the segment unlinked at zero). Through this
 * process's mapping, or a mapping made for the purpose if its own was
 * closed since; a name already gone was given back in full.
 */
export function reclaimPending(slots: readonly PendingSlot[], pid: number): void {
  for (const s of slots) {
    try {
      withHeader(s.name, (header) => {
        // Still pending, or taken over by the child, now gone: as giveBackDead
        // would for its slot, without waiting for a release or the tracker
        // (an exit that gave back everything leaves a count of 0, and the slot
        // is free again at once; one that gave back nothing, a 'fork' child
        // whose args failed to attach, leaves its references).
        const c = cancelPendingSlot(header, s.word, s.token) || cancelPendingSlot(header, s.word, pid);
        if (c > 0 && Atomics.sub(header, kRefcountIndex, c) === c) unlinkName(s.name);
      });
    } catch {
      // An unlink refused: that segment stays until the tree ends (not a reason to skip the others).
    }
  }
}

/** How often, and how many times, reclaimPendingOnceGone looks again at a child that still runs. */
const kReclaimPollMs = 20;
const kReclaimPolls = 1500;

/**
 * reclaimPending() once `pid` no longer runs (gone, or a zombie). A Popen
 * may be finished before its child is dead: a zygote's shutdown() or death
 * finishes its children at -9 while the kernel has yet to kill them
 * (PR_SET_PDEATHSIG fires only as the zygote exits; on macOS a thread of
 * the child's sends it). Reclaimed then, a slot the child takes over a
 * moment later is no longer pending: it counts its args in a slot of its
 * own, and when it dies they are given back a second time (the segment
 * unlinked under its living holders). So: at once if the pid is gone (every
 * exit reaped by a waitpid), else looked at again until it is; a pid that
 * seems to live for good (reused) keeps the references, until the tree ends.
 */
export function reclaimPendingOnceGone(pid: number, slots: readonly PendingSlot[]): void {
  const gen = forkGeneration();
  const attempt = (): boolean => {
    if (forkGeneration() !== gen) return true; // a fork child's copy of the timer: the parent's business
    if (native.isAlive(pid)) return false;
    try {
      reclaimPending(slots, pid);
    } catch {
      // a give-back that failed (an unlink refused): that reference stays until the tree ends
    }
    return true;
  };
  if (attempt()) return;
  let polls = 0;
  const timer = setInterval(() => {
    if (attempt() || ++polls >= kReclaimPolls) clearInterval(timer);
  }, kReclaimPollMs);
  timer.unref();
}

/** While a child attaches its args: their pending slots by segment name, and whether taken over yet. */
let adopting: Map<string, { slot: PendingSlot; claimed: boolean; givenBack?: boolean }> | null = null;

/**
 * In a child, around the rebuild of its args: an attachment (or a dropped
 * handle) of a segment with a pending slot takes that slot over, once, and
 * counts in it instead of in a slot of its own; the parent already counted
 * every reference the args carry there.
 */
export function adoptingArgs<T>(slots: readonly PendingSlot[] | undefined, fn: () => T): T {
  if (slots === undefined || slots.length === 0) return fn();
  const outer = adopting;
  adopting = new Map(slots.map((slot) => [slot.name, { slot, claimed: false }]));
  try {
    return fn();
  } finally {
    adopting = outer;
  }
}

/**
 * In a child rebuilding its args (adoptingArgs), once the handle of `name`
 * is attached: whether its pending slot had been given back (pendingWord),
 * so that a kind whose handle carries a count of its own besides the
 * segment's reference (a pipe end's holder count) counts itself anew too:
 * that count was given back with the rest.
 */
export function argsGivenBack(name: string): boolean {
  return adopting?.get(name)?.givenBack === true;
}

/** pendingWord(): the slot was no longer pending, so the handle's reference was given back by another (see there). */
const kGivenBack = -2;

/**
 * The pending slot's count word an arg's reference of `name` counts in, -1
 * for none, or kGivenBack. A slot that is no longer pending when the child
 * comes to take it over had its references given back by someone else: the
 * parent, after a start it took for failed (a request cancelled, a zygote
 * that died while it forked this child and was asked again), or the sweep
 * of an earlier child of the same spec that took it over and died. The
 * handles then carry no reference: an attach adds one of its own, a drop
 * gives none back. Adopted as they were, they were given back twice, and
 * the segment unlinked under its holders.
 */
function pendingWord(name: string, header: Int32Array): number {
  const e = adopting?.get(name);
  if (e === undefined) return -1;
  if (!e.claimed) {
    if (!(forkClaimed.get(name) === e.slot.word || claimPendingSlot(header, e.slot.word, e.slot.token))) {
      e.givenBack = true;
      return kGivenBack;
    }
    e.claimed = true;
  }
  return e.slot.word;
}
