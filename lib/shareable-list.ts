/**
 * ShareableList: Python's multiprocessing.shared_memory.ShareableList, in
 * Python's own layout, so that a Node process and a Python process can
 * share one (Python attaches with `ShareableList(name=...)`, Node with
 * `ShareableList.attach(name)`). A fixed-length list of numbers, bigints,
 * booleans, strings, byte strings and null in a SharedMemory segment; each
 * string or bytes slot keeps the room it was made with.
 *
 * Layout (CPython's, Lib/multiprocessing/shared_memory.py; native byte
 * order and struct's native sizes, all 8-aligned):
 *   8 bytes          the item count N (int64)
 *   (N + 1) * 8      each item's offset into the data area, then its end
 *   data area        each item: 8 bytes for a number/bool/null, its room for a string
 *   N * 8            each item's struct format, NUL-padded: "q", "d",
 *                    "xxxxxxx?" (bool), "xxxxxx?x" (None), "<room>s"
 *   N                each item's back-transform code: 0 value, 1 str, 2 bytes, 3 None
 *
 * As in Python there is no lock: a write is several stores, and a reader
 * may see a slot mid-write. Share a Lock for writes that others read.
 *
 * Exports: ShareableList, ShareableItem.
 */
import { inspect } from 'node:util';
import { ClosedError, noPublicConstructor } from './errors';
import { registerKind, type Handle } from './reduction';
import { SharedMemory } from './shared-memory';
import { kHandleTag, kToHandle } from './symbols';
import { checkOptionNames, describeValue } from './validate';

/** What a slot holds: Python's int/float (number, or bigint beyond 2^53), bool, str, bytes (a Buffer) and None (null). */
export type ShareableItem = number | bigint | boolean | string | Uint8Array | null;

const kAlign = 8;
const kBool = 'xxxxxxx?';
const kNone = 'xxxxxx?x';
const kMaxInt64 = 2n ** 63n - 1n;
const kMinInt64 = -(2n ** 63n);
const enum Code {
  Value = 0,
  Str = 1,
  Bytes = 2,
  None = 3,
}

const kNew: unique symbol = Symbol('multiproc.ShareableList.new');

/** The format, the back-transform code and the bytes (for str/bytes) of `v`. */
function describeItem(v: unknown, i: number): { fmt: string; code: Code; bytes?: Uint8Array } {
  if (v === null || v === undefined) return { fmt: kNone, code: Code.None };
  if (typeof v === 'boolean') return { fmt: kBool, code: Code.Value };
  // A safe integer is Python's int; any other number its float, so that it reads back as the same
  // number (2 ** 53 + 2 as "q" came back a bigint, -0 came back 0: review helper-75).
  if (typeof v === 'number') return { fmt: Number.isSafeInteger(v) && !Object.is(v, -0) ? 'q' : 'd', code: Code.Value };
  if (typeof v === 'bigint') {
    if (v > kMaxInt64 || v < kMinInt64) throw new RangeError(`ShareableList item ${i}: ${v}n does not fit a 64-bit signed integer (Python's "q")`);
    return { fmt: 'q', code: Code.Value };
  }
  if (typeof v === 'string') return { fmt: 's', code: Code.Str, bytes: Buffer.from(v, 'utf8') };
  if (v instanceof Uint8Array) return { fmt: 's', code: Code.Bytes, bytes: v };
  throw new TypeError(`ShareableList items are numbers, bigints, booleans, strings, Buffers/Uint8Arrays or null (as Python's: int, float, bool, str, bytes, None); item ${i} is ${describeValue(v)}`);
}

export class ShareableList implements Iterable<ShareableItem> {
  /** The segment (Python's `sl.shm`): its `name` is what another process attaches. */
  readonly shm: SharedMemory;
  readonly length: number;
  readonly #offsets: number[];
  readonly #dv: DataView;
  readonly #bytes: Uint8Array;

  private constructor(token: typeof kNew, shm: SharedMemory) {
    if (token !== kNew) {
      throw noPublicConstructor('ShareableList', 'use ShareableList.create(items, { name? }) (Python\'s ShareableList(sequence)) or ShareableList.attach(name) (Python\'s ShareableList(name=...))');
    }
    this.shm = shm;
    this.#dv = new DataView(shm.buffer);
    this.#bytes = new Uint8Array(shm.buffer);
    if (shm.size < 16) throw new TypeError(`Segment '${shm.name}' does not hold a ShareableList (${shm.size} bytes)`);
    const n = this.#dv.getBigInt64(0, true);
    // Validated on attach: a segment that is no ShareableList must not be read as one.
    if (n < 0n || (Number(n) + 2) * 8 > shm.size) throw new TypeError(`Segment '${shm.name}' does not hold a ShareableList (bad item count ${n})`);
    this.length = Number(n);
    this.#offsets = [];
    for (let i = 0; i <= this.length; i++) this.#offsets.push(Number(this.#dv.getBigInt64(8 + i * 8, true)));
    const end = this.#formatsAt() + this.length * 9;
    if (this.#offsets.some((o, i) => o < 0 || (i > 0 && o < this.#offsets[i - 1]) || o % kAlign !== 0) || end > shm.size) {
      throw new TypeError(`Segment '${shm.name}' does not hold a ShareableList (bad offsets or size ${shm.size})`);
    }
  }

  /**
   * A new list of `items` in a new segment (mode 0600; name generated
   * unless given). A string or bytes item gets room for its UTF-8 bytes
   * rounded up past the next multiple of 8, as in Python: a later value
   * there must fit in it.
   */
  static create(items: Iterable<ShareableItem>, options: { name?: string | undefined } = {}): ShareableList {
    if (items === null || typeof items !== 'object' || typeof (items as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`ShareableList.create() takes an iterable of items (an array...), got ${describeValue(items)}`);
    }
    if (typeof options !== 'object' || options === null) throw new TypeError('Expected ShareableList options to be an object like { name }');
    checkOptionNames(options, ['name'], 'ShareableList.create()');
    const values = [...items];
    const described = values.map((v, i) => describeItem(v, i));
    const offsets = [0];
    for (const d of described) {
      const room = d.bytes === undefined ? kAlign : kAlign * (Math.floor(d.bytes.length / kAlign) + 1);
      if (d.bytes !== undefined) d.fmt = `${room}s`;
      // Python's layout gives a format 8 bytes: past them the 's' was cut
      // off, and the item could not be read back, here or in Python (review
      // helper-101). Python refuses such an item too.
      if (d.fmt.length > 8) {
        throw new RangeError(
          `ShareableList item ${described.indexOf(d)} is ${d.bytes!.length} bytes: its format "${d.fmt}" is longer than the 8 bytes the layout gives a format (at most 9,999,991 bytes an item); keep big data in a SharedMemory of its own`,
        );
      }
      offsets.push(offsets[offsets.length - 1] + room);
    }
    const n = values.length;
    const size = 8 + (n + 1) * 8 + offsets[n] + n * 8 + n;
    // (Never 0 bytes, which SharedMemory refuses: an empty list still has its count and one offset.)
    const shm = SharedMemory.create(size, options.name === undefined ? {} : { name: options.name });
    try {
      const dv = new DataView(shm.buffer);
      dv.setBigInt64(0, BigInt(n), true);
      offsets.forEach((o, i) => dv.setBigInt64(8 + i * 8, BigInt(o), true));
      const list = new ShareableList(kNew, shm);
      values.forEach((v, i) => list.#write(i, v, described[i]));
      return list;
    } catch (e) {
      shm.close();
      shm.unlink();
      throw e;
    }
  }

  /** Maps the list in segment `name` (made here or by Python's ShareableList). */
  static attach(name: string): ShareableList {
    const shm = SharedMemory.attach(name);
    try {
      return new ShareableList(kNew, shm);
    } catch (e) {
      shm.close();
      throw e;
    }
  }

  #formatsAt(): number {
    return 8 + (this.length + 1) * 8 + this.#offsets[this.length];
  }

  #index(i: number, what: string): number {
    if (this.shm.closed) throw new ClosedError(`ShareableList '${this.shm.name}' is closed; attach it again to use it`);
    if (!Number.isInteger(i)) throw new TypeError(`ShareableList.${what}(): the index must be an integer, got ${describeValue(i)}`);
    if (i < 0 || i >= this.length) throw new RangeError(`ShareableList.${what}(): index ${i} is out of range (length ${this.length}; at(-1) counts from the end)`);
    return i;
  }

  /** Python's struct format of item i. */
  #format(i: number): string {
    const at = this.#formatsAt() + i * 8;
    let end = at;
    while (end < at + 8 && this.#bytes[end] !== 0) end++;
    return Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + at, end - at).toString('latin1');
  }

  /** Item i (Python's sl[i]); a string or bytes loses its trailing NULs, as in Python. */
  get(i: number): ShareableItem {
    return this.#get(i, 'get');
  }

  #get(i: number, what: string): ShareableItem {
    this.#index(i, what);
    const fmt = this.#format(i);
    const code = this.#bytes[this.#formatsAt() + this.length * 8 + i];
    const at = 8 + (this.length + 1) * 8 + this.#offsets[i];
    if (code === Code.None) return null;
    if (fmt === 'q') {
      const v = this.#dv.getBigInt64(at, true);
      return v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    if (fmt === 'd') return this.#dv.getFloat64(at, true);
    if (fmt === kBool) return this.#bytes[at + 7] !== 0;
    const m = /^(\d+)s$/.exec(fmt);
    if (m === null || (code !== Code.Str && code !== Code.Bytes)) throw new TypeError(`ShareableList item ${i} has a format this library does not read: ${JSON.stringify(fmt)} (code ${code})`);
    const room = this.#offsets[i + 1] - this.#offsets[i];
    if (Number(m[1]) > room) throw new TypeError(`ShareableList item ${i}'s format ${JSON.stringify(fmt)} is larger than its room (${room} bytes)`);
    let end = at + Number(m[1]);
    while (end > at && this.#bytes[end - 1] === 0) end--;
    const raw = Buffer.from(this.#bytes.subarray(at, end));
    return code === Code.Str ? raw.toString('utf8') : raw;
  }

  /** Item i counted from the end when negative (Python's sl[-1]). */
  at(i: number): ShareableItem {
    // Only an index that lands in range is moved: moved too, -15 of 14 items was reported as "index -1".
    return this.#get(Number.isInteger(i) && i < 0 && i >= -this.length ? i + this.length : i, 'at');
  }

  /**
   * Sets item i (Python's sl[i] = v); its type may change. A string or
   * bytes must fit the slot's room (a RangeError otherwise, and nothing is
   * written: Python's ValueError).
   */
  set(i: number, value: ShareableItem): void {
    this.#index(i, 'set');
    this.#write(i, value, describeItem(value, i));
  }

  #write(i: number, value: unknown, d: { fmt: string; code: Code; bytes?: Uint8Array }): void {
    const at = 8 + (this.length + 1) * 8 + this.#offsets[i];
    const room = this.#offsets[i + 1] - this.#offsets[i];
    let fmt = d.fmt;
    if (d.bytes !== undefined) {
      if (d.bytes.length > room) throw new RangeError(`ShareableList item ${i}: ${d.bytes.length} bytes do not fit its ${room} (a slot keeps the room it was made with)`);
      fmt = `${room}s`;
    }
    // The value first, then its format: a reader between the two sees the
    // old format over new bytes, as in Python (no lock either way). Each
    // part is written whole, never zeroed first: a reader saw an empty
    // format ~4x as often as under Python (review helper-75).
    if (d.bytes !== undefined) {
      this.#bytes.set(d.bytes, at);
      this.#bytes.fill(0, at + d.bytes.length, at + room);
    } else if (fmt === 'q') this.#dv.setBigInt64(at, BigInt(value as number | bigint), true);
    else if (fmt === 'd') this.#dv.setFloat64(at, value as number, true);
    else this.#dv.setBigUint64(at, fmt === kBool && value ? 1n << 56n : 0n, true); // a bool's byte 7; None: zeros
    const fAt = this.#formatsAt() + i * 8;
    const f8 = Buffer.alloc(8);
    f8.write(fmt, 'latin1');
    this.#bytes.set(f8, fAt);
    this.#bytes[this.#formatsAt() + this.length * 8 + i] = d.code;
  }

  /** Python's `format`: every item's struct format, joined. */
  get format(): string {
    if (this.shm.closed) throw new ClosedError(`ShareableList '${this.shm.name}' is closed; attach it again to use it`);
    let out = '';
    for (let i = 0; i < this.length; i++) out += this.#format(i);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<ShareableItem> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  toArray(): ShareableItem[] {
    return [...this];
  }

  /** How many items equal `value` (bytes compared by content). */
  count(value: ShareableItem): number {
    return this.toArray().filter((v) => same(v, value)).length;
  }

  /** The first index of `value`; a RangeError when absent (Python's ValueError). */
  index(value: ShareableItem): number {
    const i = this.toArray().findIndex((v) => same(v, value));
    if (i < 0) throw new RangeError(`ShareableList.index(): ${describeValue(value)} is not in the list`);
    return i;
  }

  /** Unmaps it here (the segment stays until unlink()). */
  close(): void {
    this.shm.close();
  }

  /** Removes the segment's name (the creator's job, once); mappings stay valid until closed. */
  unlink(): void {
    this.shm.unlink();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    const h = (this.shm as unknown as { [kToHandle](): Handle })[kToHandle]();
    return { ...h, [kHandleTag]: 'ShareableList' };
  }

  toString(): string {
    return `ShareableList(${this.shm.closed ? '<closed>' : inspect(this.toArray(), { breakLength: Infinity })}, name=${JSON.stringify(this.shm.name)})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/**
 * Python's `==` for count() and index(): True == 1 and False == 0, 5 == 5n
 * (one Python int), 1.0 == 1, -0.0 == 0, and NaN equals nothing (before:
 * booleans and numbers were kept apart, and NaN counted; review helper-101).
 */
function same(a: ShareableItem, b: ShareableItem): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  const x = typeof a === 'boolean' ? (a ? 1 : 0) : a;
  const y = typeof b === 'boolean' ? (b ? 1 : 0) : b;
  if (typeof x === 'bigint' || typeof y === 'bigint') {
    const asInt = (v: unknown): bigint | undefined => (typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined);
    const i = asInt(x);
    return i !== undefined && i === asInt(y);
  }
  return x === y;
}

registerKind('ShareableList', (h) => ShareableList.attach(h.name), { counted: false });
