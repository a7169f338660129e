/**
 * Handles: how a shared object crosses a process boundary.
 *
 * Every shareable class implements `[kToHandle]()`, returning a small plain
 * object `{ __multiproc__: '<Kind>', name, ... }` that structured clone,
 * JSON and the queue codec all carry, and registers a `fromHandle` for its
 * kind here. The receiving side calls `fromHandle()`, which attaches to the
 * same memory. CPython's equivalent is `__reduce__` plus the pickler's
 * dispatch table.
 *
 * `reduce()` / `rebuild()` walk arrays, plain objects, Maps and Sets, so
 * shared objects may sit anywhere inside Process args, task arguments,
 * results or queue items. They also carry Errors whole (own properties, a
 * subclass's name: see wire-error.ts), which structured clone would not.
 */
import { types } from 'node:util';
import { collectFresh } from './segment';
import { kHandleTag, kNotSendable, kToHandle } from './symbols';
import { describeValue } from './validate';
import { errorFields, errorFromRecord, errorRecord, isError, isErrorRecord, type ErrorRecord } from './wire-error';

export interface Handle {
  readonly [kHandleTag]: string;
  readonly name: string;
  readonly [key: string]: unknown;
}

export interface Shareable {
  [kToHandle](): Handle;
}

type Rebuilder = (handle: Handle) => unknown;
const rebuilders = new Map<string, Rebuilder>();

/** Called once per shareable class, at module load. */
export function registerKind(kind: string, fromHandle: Rebuilder, options: { counted?: boolean } = {}): void {
  rebuilders.set(kind, fromHandle);
  if (options.counted === false) uncounted.add(kind);
}

/** Kinds whose handles carry no reference (SharedMemory: attached by name, Python's way): receivable any number of times. */
const uncounted = new Set<string>();

export function isShareable(v: unknown): v is Shareable {
  return typeof v === 'object' && v !== null && typeof (v as Partial<Shareable>)[kToHandle] === 'function';
}

export function isHandle(v: unknown): v is Handle {
  return typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)[kHandleTag] === 'string';
}

/** Turns a shared object into a handle (taking a reference for the trip). */
export function toHandle(obj: Shareable): Handle {
  if (!isShareable(obj)) {
    throw new TypeError(`Expected a multiproc shared object (Queue, Value, Lock, Pipe end, SharedMemory...), got ${describeValue(obj)}`);
  }
  return obj[kToHandle]();
}

/**
 * Handle objects this process has received. A handle carries one reference,
 * for one receiver: received twice, the second receipt would give back a
 * reference nobody took, and the segment would be unlinked under its
 * owner. Here that is caught for one handle object; a handle copied (JSON,
 * another process) cannot be told from a fresh one (see docs: one toHandle()
 * per receiver).
 */
const received = new WeakSet<object>();

/** A segment name as handles carry them: one optional leading '/', none after (shm_open's rule). */
const kHandleName = /^\/?[^/]+$/;

/** Attaches to the object a handle names (adopting the handle's reference). */
export function fromHandle(h: Handle): unknown {
  if (typeof h !== 'object' || h === null || h[kHandleTag] === undefined) {
    throw new TypeError(`Expected a multiproc handle (what toHandle() returns: { ${kHandleTag}: kind, name, ... }), got ${describeValue(h)}`);
  }
  const kind: unknown = h[kHandleTag];
  if (typeof kind !== 'string') throw new TypeError(`Malformed multiproc handle: "${kHandleTag}" must be a kind name, got ${describeValue(kind)}`);
  const rebuild = rebuilders.get(kind);
  if (rebuild === undefined) {
    throw new TypeError(`Unknown multiproc handle kind '${kind}' (is the receiving side running the same multiproc version?)`);
  }
  // Every kind names its segment: checked here once, rather than crash inside each kind's attach.
  if (h.name === undefined) throw new TypeError(`Malformed ${kind} handle: missing name`);
  if (typeof h.name !== 'string' || !kHandleName.test(h.name)) throw new TypeError(`Malformed ${kind} handle: bad name ${describeValue(h.name)}`);
  if (uncounted.has(kind)) return rebuild(h);
  if (received.has(h)) {
    throw new TypeError(
      `This ${kind} handle was already received: a handle carries one reference, for one receiver. Call toHandle() once per receiver (or pass the object itself).`,
    );
  }
  const obj = rebuild(h);
  received.add(h);
  return obj;
}

/**
 * The segment names whose references `handles` (what reduce() took) carry,
 * with how many each: a handle's own and those of the handles inside it
 * (a Value's lock). Uncounted kinds carry none.
 */
export function referencesOf(handles: readonly Handle[]): Map<string, number> {
  const counts = new Map<string, number>();
  const visit = (h: Handle): void => {
    if (!uncounted.has(h[kHandleTag])) counts.set(h.name, (counts.get(h.name) ?? 0) + 1);
    for (const v of Object.values(h)) if (isHandle(v)) visit(v);
  };
  for (const h of handles) visit(h);
  return counts;
}

/** Throws the TypeError of an object that must not travel: a Pool, a Process (see kNotSendable), a SharedArrayBuffer. */
export function notSendable(v: object): void {
  const why = (v as { [kNotSendable]?: string })[kNotSendable];
  if (typeof why === 'string') throw new TypeError(why);
  if (v instanceof SharedArrayBuffer || (ArrayBuffer.isView(v) && v.buffer instanceof SharedArrayBuffer)) throw sharedBufferError();
}

/**
 * A SharedArrayBuffer is shared between the threads of one process only: a
 * copy would silently stop sharing (writes on one side never seen on the
 * other), and structured clone refuses one with a message about cloning.
 */
export function sharedBufferError(): TypeError {
  return new TypeError(
    'A SharedArrayBuffer (or a view of one) is shared only between the threads of one process and cannot reach another process. ' +
      'To share memory with another process, use SharedMemory.create(size) (its .buffer), RawArray(typecode, n) or SharedArray(...), and pass that object; to send a copy of the bytes, copy them first (Buffer.from(view)).',
  );
}


function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns `value` with every shared object replaced by its handle, or
 * `value` itself when it holds none (the common case: nothing is copied).
 * Otherwise the containers (arrays, Maps, Sets, plain objects) are copied
 * whole, each registered before its contents are, so that cycles and shared
 * references point at the copies as structured clone would see them. The
 * handles made are appended to `taken` (a start's pending slots count them:
 * see segment.ts reservePending).
 */
export function reduce(value: unknown, taken: Handle[] = []): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isShareable(value)) {
    const h = toHandle(value);
    taken.push(h);
    return h;
  }
  if (!reachesShared(value)) return value;
  const before = taken.length;
  try {
    return copyReduced(value, new Map(), taken);
  } catch (e) {
    // A shared object that cannot travel (closed, say): the handles taken
    // before it would hold their references until the process tree ends.
    for (const h of taken.splice(before)) releaseHandles(h);
    throw e;
  }
}

/**
 * A plain object of the user's own with a property named like a handle's
 * tag would be taken for a handle by rebuild(): such objects travel wrapped
 * as { [kEscapeTag]: copy } (and so do objects with that key itself).
 */
const kEscapeTag = '__multiproc_escaped__';
/** An Error as reduce() carries it: { [kErrorTag]: { n, m, b, s, p, c?, e? } } (the codec's Tag.Error fields). */
const kErrorTag = '__multiproc_error__';

function needsEscape(value: object): boolean {
  return Object.hasOwn(value, kHandleTag) || Object.hasOwn(value, kEscapeTag) || Object.hasOwn(value, kErrorTag);
}

interface ErrorMark {
  [kErrorTag]: ErrorRecord;
}

function isErrorMark(value: object): value is ErrorMark {
  return Object.hasOwn(value, kErrorTag) && isPlainObject(value);
}

/** rebuild(): each mark's Error, made once (a cause may lead back to its error). */
const builtErrors = new WeakMap<object, Error>();

/** Off while reduceForFork() runs: a 'fork' child gets the Errors themselves. */
let carryErrors = true;

/**
 * reduce() for a 'fork' child's args: it copies this process's memory, so
 * its Errors are the objects themselves (an instance of the user's class,
 * its getters and all), only shared objects become handles.
 */
export function reduceForFork(value: unknown, taken?: Handle[]): unknown {
  carryErrors = false;
  try {
    return reduce(value, taken);
  } finally {
    carryErrors = true;
  }
}

function isEscaped(value: object): value is Record<typeof kEscapeTag, Record<string, unknown>> {
  return Object.hasOwn(value, kEscapeTag) && isPlainObject(value);
}

/** Holes an array's walk by index meets before it looks at the rest of the array (again at each doubling; see someIndex). */
const kHolesBeforeKeys = 1 << 16;
/** How many evenly spaced indices of the rest are looked at then. */
const kRestSamples = 64;

/**
 * Calls fn(i) for each index i of `a` that holds an element (a hole is
 * skipped, as Array.prototype.some skips it) until one returns true. By
 * index, as long as that is cheap; after kHolesBeforeKeys holes (and again
 * at each doubling of them), when the walk has met more holes than elements
 * and fewer than 1 in 16 of kRestSamples evenly spaced indices of the rest
 * hold one, it goes on by the array's own keys: a long sparse array then
 * costs its elements, not its length (one element at 2 ** 32 - 2 took ~110 s
 * at put by index, with the event loop stopped; review helper-129). Only
 * then: a key list costs ~30 times a step by index per element, and a 10M
 * array with 1% holes, or 100,000 of them before its elements, took 3-5 s
 * at put (0.8 s by index) and ~300 MB more when its keys were listed as
 * soon as 64 indices sampled over the whole array met a hole (review
 * helper-130). A Proxy is walked by index only: its elements are what its
 * has and get traps say, which its ownKeys need not list.
 */
function someIndex(a: unknown[], fn: (i: number) => boolean): boolean {
  const n = a.length;
  let holes = 0;
  let check = kHolesBeforeKeys;
  for (let i = 0; i < n; i++) {
    if (i in a) {
      if (fn(i)) return true;
    } else if (++holes === check) {
      check *= 2;
      if (2 * holes > i + 1 && !types.isProxy(a) && sparseRest(a, i + 1, n)) return someKeyAbove(a, i, n, fn);
    }
  }
  return false;
}

/** Whether fewer than 1 in 16 of kRestSamples evenly spaced indices of [from, n) hold an element (false when that range is short: walked by index, it costs little). */
function sparseRest(a: unknown[], from: number, n: number): boolean {
  const span = n - from;
  if (span < kHolesBeforeKeys) return false;
  let held = 0;
  for (let j = 0; j < kRestSamples; j++) if (from + Math.floor((j * (span - 1)) / (kRestSamples - 1)) in a) held++;
  return 16 * held < kRestSamples;
}

/**
 * someIndex() from index i + 1 on, by the array's own keys (an array's list
 * its indices first, ascending, then its named properties). A named key is
 * no index even if Number() reads one in it ('01', '', ' 1', '1e3', '1.5'):
 * taken for one, it made a hole arrive as undefined, or a named property
 * travel (review helper-130).
 */
function someKeyAbove(a: unknown[], i: number, n: number, fn: (i: number) => boolean): boolean {
  for (const k of Object.keys(a)) {
    const j = Number(k);
    if (!(Number.isInteger(j) && j < n && String(j) === k)) break; // the named properties
    if (j > i && j in a && fn(j)) return true; // (in: a getter may have deleted it since)
  }
  return false;
}

function reachesShared(value: object): boolean {
  return walkShared(value, () => true, true, new Set());
}

/** Calls fn with each shared object inside value (in the containers reduce() walks). */
export function forEachShared(value: unknown, fn: (shared: object) => void): void {
  walkShared(value, (shared) => (fn(shared), false), false, new Set());
}

/**
 * Whether an array's length is one no array has (Infinity, 2.5): only a Proxy
 * reports such a length, and structured clone refuses every Proxy, so nothing
 * in it travels. Walked by index, a length of Infinity ran for ever at put
 * (review helper-129).
 */
function lengthOfProxy(a: unknown[]): boolean {
  return a.length >>> 0 !== a.length;
}

/**
 * Walks the containers reduce() walks, calling visit() on each shared object
 * it meets; stops, returning true, as soon as visit() does, or (with
 * `escapes`) at a plain object that reduce() must escape.
 */
function walkShared(value: unknown, visit: (shared: object) => boolean, escapes: boolean, visited: Set<object>): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (isShareable(value)) return visit(value);
  if (visited.has(value)) return false;
  visited.add(value);
  const inner = (v: unknown): boolean => walkShared(v, visit, escapes, visited);
  // Not value.some(): an array's prototype need not be Array.prototype
  // (null, Object.prototype, a subclass's own some()), and the codec sends
  // every such array here (structured clone carries it as a plain array);
  // "value.some is not a function" was thrown at put.
  if (Array.isArray(value)) {
    if (lengthOfProxy(value)) return false;
    const a = value;
    return someIndex(a, (i) => inner(a[i]));
  }
  if (value instanceof Map) {
    for (const [k, v] of value) if (inner(k) || inner(v)) return true;
    return false;
  }
  if (value instanceof Set) {
    for (const v of value) if (inner(v)) return true;
    return false;
  }
  if (isPlainObject(value)) return (escapes && needsEscape(value)) || Object.values(value).some(inner);
  if (carryErrors && isError(value)) {
    if (escapes) return true; // reduce() carries it whole
    const f = errorFields(value);
    return inner(f.cause) || Object.values(f.props).some(inner) || (f.errors ?? []).some(inner);
  }
  // Only for reduce(): forEachShared also walks what a child received, and
  // whatever the child put in there since (a Process of its own) is no error.
  if (escapes) notSendable(value);
  return false;
}

/**
 * Releases this process's attachment of a received shared object: its
 * dispose, never close() (a Queue's close() closes it for every process).
 * One already released by its user is left as it is.
 */
export function disposeShared(shared: object): void {
  const dispose = (shared as { [Symbol.dispose]?: () => void })[Symbol.dispose];
  if (typeof dispose !== 'function') return;
  try {
    dispose.call(shared);
  } catch {
    // already released
  }
}

function copyReduced(value: unknown, seen: Map<object, unknown>, taken: Handle[]): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isShareable(value)) {
    const h = toHandle(value);
    taken.push(h);
    return h;
  }
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    if (lengthOfProxy(value)) return value; // structured clone refuses it (see lengthOfProxy)
    const a = value;
    const out: unknown[] = new Array(a.length);
    seen.set(a, out);
    someIndex(a, (i) => ((out[i] = copyReduced(a[i], seen, taken)), false)); // a hole stays a hole
    return out;
  }
  if (value instanceof Map) {
    const out = new Map<unknown, unknown>();
    seen.set(value, out);
    for (const [k, v] of value) out.set(copyReduced(k, seen, taken), copyReduced(v, seen, taken));
    return out;
  }
  if (value instanceof Set) {
    const out = new Set<unknown>();
    seen.set(value, out);
    for (const v of value) out.add(copyReduced(v, seen, taken));
    return out;
  }
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = Object.getPrototypeOf(value) === null ? Object.create(null) : {};
    // Every reference to an escaped object, cycles included, goes to its one wrapper.
    seen.set(value, needsEscape(value) ? { [kEscapeTag]: out } : out);
    for (const key of Object.keys(value)) {
      // defineProperty: a key named __proto__ stays an own property.
      Object.defineProperty(out, key, { value: copyReduced((value as Record<string, unknown>)[key], seen, taken), enumerable: true, writable: true, configurable: true });
    }
    return seen.get(value);
  }
  if (carryErrors && isError(value)) {
    const r = errorRecord(value);
    const mark: ErrorMark = { [kErrorTag]: r };
    seen.set(value, mark); // before its values: a cause may lead back to it
    r.p = copyReduced(r.p, seen, taken) as Record<string, unknown>;
    if (Object.hasOwn(r, 'c')) r.c = copyReduced(r.c, seen, taken);
    if (r.e !== undefined) r.e = copyReduced(r.e, seen, taken) as unknown[];
    return mark;
  }
  notSendable(value);
  return value;
}

/**
 * Gives back the references that the handles in a reduce()d value took, when
 * nobody will receive them (a send or a start() that failed): re-attaching
 * in this process drops each handle's reference, as a receipt would.
 */
export function releaseHandles(reduced: unknown): void {
  const fresh: object[] = [];
  try {
    collectFresh(fresh, () => rebuild(reduced));
  } catch {
    // what could be released is released
  }
  // Attached only to give the references back: released now, not at GC.
  for (const obj of fresh) disposeShared(obj);
}

/** The inverse of reduce(): handles become attached objects again (in place). */
export function rebuild(value: unknown, seen = new Set<object>()): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isEscaped(value)) {
    // The user's own object (see kEscapeTag): its properties may hold handles, it is none.
    const inner = value[kEscapeTag];
    if (!seen.has(inner)) {
      seen.add(inner);
      for (const key of Object.keys(inner)) inner[key] = rebuild(inner[key], seen);
    }
    return inner;
  }
  if (isErrorMark(value) && isErrorRecord(value[kErrorTag])) {
    const done = builtErrors.get(value);
    if (done !== undefined) return done;
    return errorFromRecord(value[kErrorTag], (v) => rebuild(v, seen), (err) => builtErrors.set(value, err));
  }
  if (isHandle(value)) return fromHandle(value);
  if (seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    if (lengthOfProxy(value)) return value; // left as it was by copyReduced: nothing of ours in it
    const a = value;
    someIndex(a, (i) => ((a[i] = rebuild(a[i], seen)), false)); // a hole stays a hole
  } else if (value instanceof Map) {
    const entries = [...value];
    value.clear();
    for (const [k, v] of entries) value.set(rebuild(k, seen), rebuild(v, seen));
  } else if (value instanceof Set) {
    const items = [...value];
    value.clear();
    for (const v of items) value.add(rebuild(v, seen));
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      (value as Record<string, unknown>)[key] = rebuild((value as Record<string, unknown>)[key], seen);
    }
  }
  return value;
}

