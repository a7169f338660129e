/**
 * Value, RawValue, SharedArray and RawArray: typed numbers in shared memory
 * (CPython's multiprocessing.sharedctypes).
 *
 * Reads and writes of one element are single machine accesses on an aligned
 * word (Atomics for integer kinds), so they never tear, and do not take the
 * lock; as in Python, a compound update such as `v.value += 1` must hold
 * `getLock()`. The lock (an RLock unless one is given) lives in its own
 * segment and travels with the value's handle.
 *
 * `a[i]` goes through a Proxy; `a.view` is the typed array over the same
 * memory, for bulk and hot-loop access (see BENCHMARKS.md for the cost).
 *
 * Exports: Value, RawValue, SharedArray, RawArray, typecodes, Typecode.
 */
import { ClosedError, noPublicConstructor } from './errors';
import { Kind } from './layout';
import { Acquirable, type LockGuard, type WaitOptions } from './synchronize/common';
import { isHandle, registerKind, type Handle } from './reduction';
import { attachWithLock, Segment } from './segment';
import { kHandleTag, kToHandle } from './symbols';
import { checkInteger, checkOptionNames, describeValue } from './validate';

export type BigTypecode = 'l' | 'L' | 'q' | 'Q' | 'int64' | 'uint64';
export type NumberTypecode =
  | 'b' | 'B' | 'h' | 'H' | 'i' | 'I' | 'f' | 'd'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
export type Typecode = NumberTypecode | BigTypecode;
/** The JS type a typecode holds: bigint for the 64-bit integer kinds, else number. */
export type ElementOf<C extends Typecode> = C extends BigTypecode ? bigint : number;

type AnyTypedArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;
/** The typed array class behind each typecode. */
export type TypedArrayOf<C extends Typecode> = C extends BigTypecode
  ? C extends 'L' | 'Q' | 'uint64' ? BigUint64Array : BigInt64Array
  : C extends 'f' | 'float32' ? Float32Array
  : C extends 'd' | 'float64' ? Float64Array
  : C extends 'b' | 'int8' ? Int8Array
  : C extends 'B' | 'uint8' ? Uint8Array
  : C extends 'h' | 'int16' ? Int16Array
  : C extends 'H' | 'uint16' ? Uint16Array
  : C extends 'I' | 'uint32' ? Uint32Array
  : Int32Array;

interface TypeInfo {
  id: number;
  name: string;
  ctor: { new (buffer: ArrayBuffer, byteOffset: number, length: number): AnyTypedArray; BYTES_PER_ELEMENT: number };
  bigint: boolean;
  atomic: boolean; // integer kinds: Atomics.load/store apply
}

const kinds: TypeInfo[] = [
  { id: 0, name: 'int8', ctor: Int8Array, bigint: false, atomic: true },
  { id: 1, name: 'uint8', ctor: Uint8Array, bigint: false, atomic: true },
  { id: 2, name: 'int16', ctor: Int16Array, bigint: false, atomic: true },
  { id: 3, name: 'uint16', ctor: Uint16Array, bigint: false, atomic: true },
  { id: 4, name: 'int32', ctor: Int32Array, bigint: false, atomic: true },
  { id: 5, name: 'uint32', ctor: Uint32Array, bigint: false, atomic: true },
  { id: 6, name: 'int64', ctor: BigInt64Array, bigint: true, atomic: true },
  { id: 7, name: 'uint64', ctor: BigUint64Array, bigint: true, atomic: true },
  { id: 8, name: 'float32', ctor: Float32Array, bigint: false, atomic: false },
  { id: 9, name: 'float64', ctor: Float64Array, bigint: false, atomic: false },
];

/** Every accepted typecode and the element type it names. */
export const typecodes: Readonly<Record<Typecode, string>> = Object.freeze({
  b: 'int8', B: 'uint8', h: 'int16', H: 'uint16', i: 'int32', I: 'uint32',
  l: 'int64', L: 'uint64', q: 'int64', Q: 'uint64', f: 'float32', d: 'float64',
  int8: 'int8', uint8: 'uint8', int16: 'int16', uint16: 'uint16', int32: 'int32', uint32: 'uint32',
  int64: 'int64', uint64: 'uint64', float32: 'float32', float64: 'float64',
});

function typeInfo(typecode: unknown): TypeInfo {
  const name = typeof typecode === 'string' && Object.hasOwn(typecodes, typecode) ? typecodes[typecode as Typecode] : undefined;
  if (name === undefined) {
    throw new TypeError(`Unknown typecode ${describeValue(typecode)}; expected one of ${Object.keys(typecodes).map((c) => `'${c}'`).join(', ')}`);
  }
  return kinds.find((k) => k.name === name)!;
}

/** "an int32", "a uint8", "a float64": the kind with its article, for messages. */
function kindName(info: TypeInfo): string {
  return `${info.name.startsWith('i') ? 'an' : 'a'} ${info.name}`;
}

/** Converts and checks one element value for the given kind. */
function coerce(info: TypeInfo, v: unknown, what: string): number | bigint {
  if (info.bigint) {
    if (typeof v === 'bigint') return v;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
    throw new TypeError(`${what} of ${kindName(info)} must be a bigint (or a safe integer number), got ${describeValue(v)}`);
  }
  if (typeof v !== 'number') throw new TypeError(`${what} of ${kindName(info)} must be a number, got ${describeValue(v)}`);
  // As ctypes: an integer kind refuses 1.5, NaN and Infinity (a typed array would store 1, 0, 0); out of range wraps.
  if (info.atomic && !Number.isInteger(v)) throw new TypeError(`${what} of ${kindName(info)} must be an integer, got ${describeValue(v)}; round it first (Math.trunc, Math.round) or use a float typecode ('f', 'd')`);
  return v;
}

/**
 * The lock of a Value/SharedArray (`getLock()`), and what `{ lock }` accepts
 * besides true (a new RLock) and false (none): a Lock, RLock, Semaphore...
 * of this library, with their idioms (`withLock`, `lock`, `lockSync`).
 */
export interface LockLike {
  acquire(options?: WaitOptions): Promise<boolean>;
  acquireSync(timeoutMs?: number): boolean;
  tryAcquire(): boolean;
  release(): void;
  lock(options?: WaitOptions): Promise<LockGuard>;
  lockSync(timeoutMs?: number): LockGuard;
  withLock<T>(fn: () => T | PromiseLike<T>, options?: WaitOptions): Promise<T>;
}

export interface SharedOptions {
  lock?: boolean | LockLike | undefined;
}

/** A lock made for one Value/SharedArray, closed with it. */
type OwnLock = LockLike & { close(): void };
/** Makes the default lock of a synchronized Value/SharedArray (an RLock, as in Python). */
let defaultLockFactory: (() => OwnLock) | undefined;
/** synchronize.ts installs the RLock factory here (keeps the import graph acyclic). */
export function setDefaultLockFactory(factory: () => OwnLock): void {
  defaultLockFactory = factory;
}

/** The lock `{ lock }` asks for, and the same lock again in `own` if it was made for the object (which then closes it). */
interface ResolvedLock {
  lock: LockLike | null;
  own: OwnLock | null;
}
const kNoLock: ResolvedLock = { lock: null, own: null };

/** The `lock` of a Value/SharedArray's options (undefined: none given), the options checked first. */
function lockOption(options: unknown, what: string): SharedOptions['lock'] {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') throw new TypeError(`Expected the ${what} options to be an object like { lock }, got ${describeValue(options)}`);
  checkOptionNames(options, ['lock'], `${what}()`);
  return (options as SharedOptions).lock;
}

function resolveLock(lock: SharedOptions['lock'], what: string): ResolvedLock {
  if (lock === undefined || lock === true) {
    if (defaultLockFactory === undefined) {
      throw new Error(`${what}: process-shared locks are not available yet in this build; pass { lock: false } or use Raw${what}`);
    }
    const own = defaultLockFactory();
    return { lock: own, own };
  }
  if (lock === false) return kNoLock;
  // One of the library's locks (a subclass too), which travel with the value (Python takes any object
  // with acquire/release; a look-alike here could not be sent to another process, which is what a
  // shared value is for: it failed at start(); review helper-79).
  if (lock instanceof Acquirable) return { lock: lock as unknown as LockLike, own: null };
  throw new TypeError(`Expected "lock" to be true, false or a Lock, RLock, Semaphore, BoundedSemaphore or Condition, got ${describeValue(lock)}`);
}

/** The data segment; a lock made for it is closed if that fails (it would have stayed mapped until GC). */
function createOrCloseLock(own: OwnLock | null, create: () => Segment): Segment {
  try {
    return create();
  } catch (e) {
    own?.close();
    throw e;
  }
}

function lockHandle(lock: LockLike | null): Handle | null {
  if (lock === null) return null;
  const h = (lock as Partial<{ [kToHandle](): Handle }>)[kToHandle];
  if (typeof h !== 'function') throw new TypeError('The lock of a shared value must be a multiproc lock to cross processes');
  return h.call(lock);
}

/**
 * Makes the fields of a finished Value/SharedArray read-only (and
 * undeletable): they are what its methods and the Proxy rely on, and a plain
 * class field is writable whatever `readonly` says in the types, so
 * `a.length = 5` made every later a[i] and for..of report the open array
 * closed. Assignment then does what it does to a typed array's length:
 * ignored in sloppy code, a TypeError in strict code (modules, classes).
 */
/** Fields that are the object's workings, not its data: left out of Object.keys, spread and console's listing. */
const kInternalFields = new Set<string | symbol>(['segment', 'info', 'lock', 'ownLock']);

function fixFields(o: object, hidden: readonly string[] = []): void {
  for (const k of Reflect.ownKeys(o)) {
    const internal = kInternalFields.has(k) || hidden.includes(k as string);
    Object.defineProperty(o, k, { writable: false, configurable: false, ...(internal ? { enumerable: false } : {}) });
  }
}

abstract class SharedCtype {
  protected readonly segment: Segment;
  protected readonly info: TypeInfo;
  protected readonly lock: LockLike | null;
  /**
   * The lock made for this object alone (the default RLock): close() closes
   * it too, as Condition does. Not a #private field: a SharedArray's methods
   * run with the Proxy as `this`.
   */
  protected readonly ownLock: OwnLock | null;
  readonly typecode: Typecode;

  protected constructor(segment: Segment, info: TypeInfo, typecode: Typecode, lock: LockLike | null, own: OwnLock | null) {
    if (!(segment instanceof Segment)) {
      throw noPublicConstructor(new.target.name, new.target.name === 'SharedValue'
        ? 'use Value(typecode, initial) (with a lock) or RawValue(typecode, initial)'
        : 'use SharedArray(typecode, lengthOrValues) (with a lock) or RawArray(typecode, lengthOrValues)');
    }
    this.segment = segment;
    this.info = info;
    this.typecode = typecode;
    this.lock = lock;
    this.ownLock = own;
    segment.bindTo(this);
  }

  /** The lock guarding compound updates (Python's get_lock()). Throws for Raw* objects. */
  getLock(): LockLike {
    if (this.lock === null) {
      throw new TypeError(`This ${this.constructor.name === 'SharedValue' ? 'RawValue' : 'RawArray'} has no lock; create it with Value()/SharedArray() or pass { lock }`);
    }
    return this.lock;
  }

  /** Name of the segment holding the data. */
  get segmentName(): string {
    return this.segment.name;
  }

  /**
   * Releases this process's mapping; the memory is freed when every process
   * has. A default lock (made by Value()/SharedArray()) is closed with it; a
   * lock passed in `{ lock }`, or attached with a handle (the process may
   * hold it through other objects), is left to its owner.
   */
  close(): void {
    this.segment.close();
    this.ownLock?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  protected closedError(): Error {
    return new ClosedError(`This shared ${this.info.name} (segment '${this.segment.name}') is closed`);
  }

  /** For the methods that hand out or walk the typed array: a closed one is detached, and V8's own error names none of this. */
  protected checkOpen(): void {
    if (this.segment.closed) throw this.closedError();
  }

  /** console.log and util.inspect show what toString() says, not the segment's bytes. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  protected handle(kind: string): Handle {
    // Our own segment first: it throws if this object is closed, and a lock
    // reference taken before that would never be given back.
    this.segment.retain();
    let lock: Handle | null;
    try {
      lock = lockHandle(this.lock);
    } catch (e) {
      this.segment.unretain();
      throw e;
    }
    return { [kHandleTag]: kind, name: this.segment.name, typecode: this.typecode, lock };
  }
}

export class SharedValue<C extends Typecode = Typecode> extends SharedCtype {
  private readonly view: TypedArrayOf<C>;

  /** @internal use Value() / RawValue() */
  constructor(segment: Segment, info: TypeInfo, typecode: C, lock: LockLike | null, own: OwnLock | null = null) {
    super(segment, info, typecode, lock, own);
    this.view = new info.ctor(segment.buffer, segment.payloadOffset, 1) as TypedArrayOf<C>;
    fixFields(this, ['view']);
  }

  get value(): ElementOf<C> {
    if (this.view.length === 0) throw this.closedError();
    return (this.info.atomic ? Atomics.load(this.view as Int32Array, 0) : this.view[0]) as ElementOf<C>;
  }

  set value(v: ElementOf<C>) {
    const x = coerce(this.info, v, 'The value');
    if (this.view.length === 0) throw this.closedError();
    if (this.info.atomic) Atomics.store(this.view as Int32Array, 0, x as number);
    else (this.view as Float64Array)[0] = x as number;
  }

  /** The typed array (length 1) over the value's memory. */
  toTypedArray(): TypedArrayOf<C> {
    this.checkOpen();
    return this.view;
  }

  [kToHandle](): Handle {
    return this.handle('Value');
  }

  /** JSON.stringify(v) writes the value (a bigint kind throws there, as any bigint does). */
  toJSON(): ElementOf<C> {
    return this.value;
  }

  override toString(): string {
    let v: string;
    try {
      v = String(this.value);
    } catch {
      v = '<closed>';
    }
    return `${this.lock ? 'Value' : 'RawValue'}('${this.typecode}', ${v})`;
  }
}

function createValue<C extends Typecode>(typecode: C, initial: unknown, { lock, own }: ResolvedLock): SharedValue<C> {
  const info = typeInfo(typecode);
  const init = initial === undefined ? (info.bigint ? 0n : 0) : coerce(info, initial, 'The initial value');
  const seg = createOrCloseLock(own, () => Segment.create(Kind.Value, 8, [info.id, 1]));
  const v = new SharedValue(seg, info, typecode, lock, own);
  v.value = init as ElementOf<C>;
  return v;
}

/** A number (or bigint) in shared memory, with a lock for compound updates. Called without `new`. */
export function Value<C extends Typecode>(typecode: C, initial?: ElementOf<C>, options: SharedOptions = {}): SharedValue<C> {
  const info = typeInfo(typecode);
  const init = initial === undefined ? undefined : coerce(info, initial, 'The initial value');
  const lock = lockOption(options, 'Value');
  return createValue(typecode, init, resolveLock(lock, 'Value'));
}

/** A number (or bigint) in shared memory with no lock. Called without `new`. */
export function RawValue<C extends Typecode>(typecode: C, initial?: ElementOf<C>): SharedValue<C> {
  if (arguments.length > 2 && arguments[2] !== undefined) throw rawTakesNoOptions('RawValue', 'Value', 'initial');
  return createValue(typecode, initial, kNoLock);
}

/** Python's RawValue/RawArray take no lock argument either; a { lock } passed from habit was dropped without a word (helper-60). */
function rawTakesNoOptions(raw: string, locked: string, second: string): TypeError {
  return new TypeError(`${raw}(typecode, ${second}) takes no third argument: it has no lock. For one, use ${locked}(typecode, ${second}, { lock: true })`);
}

export class SharedArrayObject<C extends Typecode = Typecode> extends SharedCtype {
  /** The typed array over the shared elements: the fastest way in. */
  readonly view: TypedArrayOf<C>;
  readonly length: number;

  /** @internal use SharedArray() / RawArray() */
  constructor(segment: Segment, info: TypeInfo, typecode: C, length: number, lock: LockLike | null, own: OwnLock | null = null) {
    super(segment, info, typecode, lock, own);
    this.view = new info.ctor(segment.buffer, segment.payloadOffset, length) as TypedArrayOf<C>;
    this.length = length;
    fixFields(this);
  }

  get(i: number): ElementOf<C> {
    if (!(i >= 0 && i < this.length) || !Number.isInteger(i)) throw this.indexError(i);
    const v = this.view[i];
    if (v === undefined) throw this.closedError();
    return v as ElementOf<C>;
  }

  set(i: number, v: ElementOf<C>): void {
    if (!(i >= 0 && i < this.length) || !Number.isInteger(i)) throw this.indexError(i);
    const x = coerce(this.info, v, 'An element');
    if (this.view.length === 0) throw this.closedError();
    (this.view as Float64Array)[i] = x as number;
  }

  /** The element at i, counting back from the end when i < 0 (Python's a[-1]; a[-1] itself is a RangeError, as a[i] follows typed arrays). */
  at(i: number): ElementOf<C> {
    // Only an index that lands in range is moved: moved too, -4 of 3 elements was reported as "Index -1".
    return this.get(Number.isInteger(i) && i < 0 && i >= -this.length ? this.length + i : i);
  }

  /** A plain JS array copy of elements [start, end), negative indices from the end: Python's a[start:end] (Array.prototype.slice's rules). */
  slice(start?: number, end?: number): ElementOf<C>[] {
    this.checkOpen();
    return Array.from(this.view.slice(start, end) as unknown as ArrayLike<ElementOf<C>>);
  }

  toTypedArray(): TypedArrayOf<C> {
    this.checkOpen();
    return this.view;
  }

  /** A plain JS array copy of the elements. */
  toArray(): ElementOf<C>[] {
    this.checkOpen();
    return Array.from(this.view as unknown as ArrayLike<ElementOf<C>>);
  }

  toJSON(): ElementOf<C>[] {
    return this.toArray();
  }

  *[Symbol.iterator](): IterableIterator<ElementOf<C>> {
    this.checkOpen();
    for (let i = 0; i < this.length; i++) yield getElement.call(this, i) as ElementOf<C>;
  }

  [kToHandle](): Handle {
    return this.handle('SharedArray');
  }

  /** SharedArray('d', [1, 2, 3]), the first 100 elements at most. */
  override toString(): string {
    let items: string;
    try {
      const shown = Array.from(this.view.subarray(0, 100) as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' ? `${x}n` : String(x)));
      items = `[${shown.join(', ')}${this.length > 100 ? `, ... ${this.length - 100} more` : ''}]`;
    } catch {
      items = '<closed>';
    }
    return `${this.lock ? 'SharedArray' : 'RawArray'}('${this.typecode}', ${items})`;
  }

  indexError(i: unknown): RangeError {
    return new RangeError(`Index ${describeValue(i)} is out of range for a SharedArray of length ${this.length}`);
  }
}

/**
 * What a[i] runs, called as these functions rather than looked up on the
 * object: `a.get = f` (an own property, which the Proxy lets a user add, as
 * on any object) then changes a.get(), not a[i] or for..of.
 */
const getElement = SharedArrayObject.prototype.get;
const setElement = SharedArrayObject.prototype.set;

/** SharedArray elements are reachable as `a[i]`. */
export type SharedArray<C extends Typecode = Typecode> = SharedArrayObject<C> & { [index: number]: ElementOf<C> };

/**
 * The number a canonical numeric key names (in range or not, an integer or
 * not), else undefined (unlike -2 before: a[-2] read undefined). As in a
 * typed array, such a key is never an ordinary property: a['1.5'] = 3 added
 * one to the target (review helper-101); it is an index error now, as a[-1].
 */
function indexOf(p: string): number | undefined {
  const c = p.charCodeAt(0);
  if (!(c >= 48 && c <= 57) && c !== 45 /* - */ && p !== 'Infinity' && p !== 'NaN') return undefined;
  const n = Number(p);
  if (p === '-0') return Number.NaN; // canonical, and never an index (a[-0] is not a[0])
  return String(n) === p ? n : undefined;
}

function inRange(target: SharedArrayObject, i: number): boolean {
  return Number.isInteger(i) && i >= 0 && i < target.length;
}

/**
 * Index keys behave as a typed array's: elements are own, enumerable,
 * writable and configurable-looking data properties that cannot be deleted
 * or redefined otherwise. Without the defineProperty and deleteProperty
 * traps, Object.defineProperty(a, '0', ...) defined a property on the target
 * and every later a[0] threw a Proxy invariant TypeError (helper-53).
 */
const proxyHandler: ProxyHandler<SharedArrayObject> = {
  get(target, p) {
    if (typeof p === 'string') {
      const i = indexOf(p);
      if (i !== undefined) return getElement.call(target, i);
    }
    return Reflect.get(target, p, target);
  },
  set(target, p, value) {
    if (typeof p === 'string') {
      const i = indexOf(p);
      if (i !== undefined) {
        setElement.call(target, i, value as never);
        return true;
      }
    }
    return Reflect.set(target, p, value, target);
  },
  has(target, p) {
    if (typeof p === 'string') {
      const i = indexOf(p);
      if (i !== undefined) return inRange(target, i);
    }
    return Reflect.has(target, p);
  },
  defineProperty(target, p, desc) {
    if (typeof p === 'string') {
      const i = indexOf(p);
      if (i !== undefined) {
        // As a typed array: only a plain data write to an element in range (false: a TypeError from defineProperty).
        if (!inRange(target, i) || desc.get !== undefined || desc.set !== undefined) return false;
        if (desc.configurable === false || desc.enumerable === false || desc.writable === false) return false;
        if ('value' in desc) setElement.call(target, i, desc.value as never);
        return true;
      }
    }
    return Reflect.defineProperty(target, p, desc);
  },
  deleteProperty(target, p) {
    if (typeof p === 'string') {
      const i = indexOf(p);
      if (i !== undefined) return !inRange(target, i); // an element cannot be deleted (strict code: a TypeError)
    }
    return Reflect.deleteProperty(target, p);
  },
  getOwnPropertyDescriptor(target, p) {
    if (typeof p === 'string') {
      const i = indexOf(p);
      if (i !== undefined) return inRange(target, i) ? { value: getElement.call(target, i), writable: true, enumerable: true, configurable: true } : undefined;
    }
    return Reflect.getOwnPropertyDescriptor(target, p);
  },
  // Kept extensible: a non-extensible target made every later Object.keys()
  // or descriptor lookup break the Proxy's invariants (its elements are not
  // the target's own properties; review helper-101).
  preventExtensions() {
    throw new TypeError('A SharedArray cannot be made non-extensible (Object.preventExtensions, seal or freeze): its elements live in shared memory that other processes write');
  },
  ownKeys(target) {
    const keys: (string | symbol)[] = [];
    for (let i = 0; i < target.length; i++) keys.push(String(i));
    return keys.concat(Reflect.ownKeys(target));
  },
};

function createArray<C extends Typecode>(typecode: C, lengthOrValues: unknown, makeLock: () => ResolvedLock): SharedArray<C> {
  const info = typeInfo(typecode);
  let values: unknown[] | undefined;
  let length: number;
  if (typeof lengthOrValues === 'number') {
    length = checkInteger('length', lengthOrValues, 0, 2 ** 31 - 1);
  } else if (typeof lengthOrValues === 'object' && lengthOrValues !== null && Symbol.iterator in lengthOrValues) {
    values = Array.from(lengthOrValues as Iterable<unknown>);
    length = values.length;
    values = values.map((v, i) => coerce(info, v, `Element ${i}`));
  } else {
    throw new TypeError(`Expected a length or an iterable of initial values, got ${describeValue(lengthOrValues)}`);
  }
  const { lock, own } = makeLock();
  const seg = createOrCloseLock(own, () => Segment.create(Kind.Array, Math.max(length * info.ctor.BYTES_PER_ELEMENT, 8), [info.id, length]));
  const arr = new SharedArrayObject(seg, info, typecode, length, lock, own);
  if (values) (arr.view as unknown as { set(a: ArrayLike<unknown>): void }).set(values);
  return new Proxy(arr, proxyHandler as ProxyHandler<SharedArrayObject<C>>) as SharedArray<C>;
}

/** A fixed-length typed array in shared memory, with a lock. Called without `new`. */
export function SharedArray<C extends Typecode>(
  typecode: C,
  lengthOrValues: number | Iterable<ElementOf<C>>,
  options: SharedOptions = {},
): SharedArray<C> {
  typeInfo(typecode);
  const lock = lockOption(options, 'SharedArray');
  // The lock (a segment of its own) is made only once the values passed.
  return createArray(typecode, lengthOrValues, () => resolveLock(lock, 'Array'));
}

/** A fixed-length typed array in shared memory with no lock. Called without `new`. */
export function RawArray<C extends Typecode>(typecode: C, lengthOrValues: number | Iterable<ElementOf<C>>): SharedArray<C> {
  if (arguments.length > 2 && arguments[2] !== undefined) throw rawTakesNoOptions('RawArray', 'SharedArray', 'lengthOrValues');
  return createArray(typecode, lengthOrValues, () => kNoLock);
}

/** The kinds of object a Value/SharedArray's lock may be (by handle tag). */
const kLockKinds: readonly string[] = ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Condition'];

/** Attaches what a Value/SharedArray handle names, its lock a mapping of its own (see attachWithLock). */
function receive<T extends object>(h: Handle, kind: Kind, make: (seg: Segment, lock: OwnLock | null) => T): T {
  const what = h[kHandleTag];
  const l = h.lock;
  if (l !== null && l !== undefined && !isHandle(l)) throw new TypeError(`Malformed ${what} handle: bad lock ${describeValue(l)}`);
  // Attached as the lock, anything else would be closed with the value (a Queue's close() closes it for everyone).
  if (isHandle(l) && !kLockKinds.includes(l[kHandleTag])) throw new TypeError(`Malformed ${what} handle: its lock is a ${l[kHandleTag]} handle`);
  if (h.typecode === undefined) throw new TypeError(`Malformed ${what} handle: missing typecode`);
  if (typeof h.typecode !== 'string' || !Object.hasOwn(typecodes, h.typecode)) throw new TypeError(`Malformed ${what} handle: bad typecode ${describeValue(h.typecode)}`);
  return attachWithLock<T, OwnLock>(h.name, kind, l ?? null, make);
}

/** The element type a received segment holds, which must be the one its handle's typecode names. */
function receivedType(h: Handle, seg: Segment): TypeInfo {
  const info = kinds[seg.param(0)];
  if (info === undefined) throw new Error(`Segment '${h.name}' holds an unknown element type ${seg.param(0)}`);
  if (typecodes[h.typecode as Typecode] !== info.name) {
    throw new Error(`Segment '${h.name}' holds ${info.name} elements, not the ${typecodes[h.typecode as Typecode]} its handle's typecode '${h.typecode as string}' names`);
  }
  return info;
}

registerKind('Value', (h) =>
  receive(h, Kind.Value, (seg, lock) => new SharedValue(seg, receivedType(h, seg), h.typecode as Typecode, lock, lock)),
);

registerKind('SharedArray', (h) =>
  receive(h, Kind.Array, (seg, lock) => {
    const info = receivedType(h, seg);
    const length = seg.param(1);
    if (length * info.ctor.BYTES_PER_ELEMENT > seg.payloadBytes) {
      throw new Error(`Segment '${h.name}' does not hold a valid SharedArray`);
    }
    const arr = new SharedArrayObject(seg, info, h.typecode as Typecode, length, lock, lock);
    return new Proxy(arr, proxyHandler) as SharedArray;
  }),
);

export function isSharedArray(v: unknown): v is SharedArray {
  return v instanceof SharedArrayObject;
}
