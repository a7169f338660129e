/**
 * The item codec of queues and pipes: a tag byte per value, fast paths in
 * plain JS for the shapes messages are made of, `v8.serialize` (structured
 * clone) for everything else, and shared objects as handles.
 *
 *   tag   value                      bytes after the tag
 *   0x00  undefined                  -
 *   0x01  null                       -
 *   0x02  false / 0x03 true          -
 *   0x04  int32 (not -0)             int32 LE
 *   0x05  other number               float64 LE (-0, NaN, Infinity exact)
 *   0x06  bigint in int64 range      int64 LE
 *   0x07  other bigint               u8 sign, u32 n, n hex digits (magnitude)
 *   0x08  string, all chars < 256    u32 n, n latin1 bytes
 *   0x09  string, any                u32 n, 2n UTF-16LE bytes (lone surrogates exact)
 *   0x0a  array (dense, plain)       u32 n, n values
 *   0x0b  plain object               u32 n, n x (key string value, value)
 *   0x0c  Buffer                     u32 n, n bytes
 *   0x0d  typed array                u8 kind, u32 byteLength, bytes
 *   0x0e  ArrayBuffer                u32 n, n bytes
 *   0x0f  Date                       float64 LE (time value)
 *   0x10  shared object              its handle, as a plain-object value
 *   0x11  plain object, short keys   u16 L, key list (L bytes: u8 n, n x (u8 len, latin1)), n values
 *   0x12  Error                      a plain-object value { n: name, m: message, b: base class, s: stack,
 *                                    p: own enumerable props, c?: cause, e?: AggregateError's errors }
 *   0x13  big Buffer / typed array / ArrayBuffer inside an item: u32 n, n name bytes of its own
 *         segment (Kind.Blob, its raw bytes; param0 the kind), as a top-level big one travels
 *   0x14  array of int32 numbers (no -0), packed: u32 n, n int32 LE
 *   0x15  array of numbers, packed: u32 n, n float64 LE
 *   0x16  string of under 64 chars, all < 256: u8 n, n latin1 bytes (0x08 is written for 64 and more)
 *   0x17  array of under 256 elements (not packed): u8 n, n values (0x0a for 256 and more, and for
 *         an array of 16+ numbers whose packing stopped at an element that is not a number)
 *   0xf0  (top level) structured clone: u8 hasHandles, then v8.serialize(reduce(item))
 *   0xf1  (top level) raw bytes from sendBytes: the rest is the bytes
 *   0xf2  (top level) big item in its own segment: u8 form, u32 n, n name bytes
 *         form 0: the segment holds raw bytes (Buffer / typed array kind in param0)
 *         form 1: the segment holds an encoded item (this table)
 *
 * The fast encoder bails out to structured clone as soon as it meets anything
 * else (Map, Set, RegExp, class instances, holes, DataView...) or an
 * object it already visited (cycles and shared references, which structured
 * clone preserves). Functions and symbols make structured clone throw, which
 * becomes a TypeError before anything was written to the queue.
 *
 * Known differences from structured clone, by design: a typed array carries
 * only its own bytes (byteOffset 0 in a fresh buffer on the other side, not the
 * whole underlying ArrayBuffer); two views of one ArrayBuffer in one item
 * arrive as two copies; extra non-index properties of arrays are dropped.
 * Buffers arrive as Buffers. A Proxy of a plain object or array, and an
 * `arguments` object, travel as the plain object or array they show (their
 * own enumerable properties, read through the traps), where structured clone
 * refuses them.
 */
import * as v8 from 'node:v8';
import { Kind } from './layout';
import { native } from './native';
import { disposeShared, fromHandle, isShareable, notSendable, rebuild, reduce, releaseHandles, sharedBufferError, toHandle, type Handle, type Shareable } from './reduction';
import { kToHandle } from './symbols';
import { collectFresh, Segment } from './segment';
import { describeValue } from './validate';
import { errorFromRecord, errorRecord, isError, isErrorRecord } from './wire-error';

export const enum Tag {
  Undefined = 0x00,
  Null = 0x01,
  False = 0x02,
  True = 0x03,
  Int32 = 0x04,
  Float64 = 0x05,
  BigInt64 = 0x06,
  BigIntHex = 0x07,
  Latin1 = 0x08,
  Utf16 = 0x09,
  Array = 0x0a,
  Object = 0x0b,
  Buffer = 0x0c,
  TypedArray = 0x0d,
  ArrayBuffer = 0x0e,
  Date = 0x0f,
  Shared = 0x10,
  Record = 0x11,
  Error = 0x12,
  BlobRef = 0x13,
  /** An array of int32 numbers (no -0), packed: u32 n, then n little-endian int32s. */
  Int32s = 0x14,
  /** An array of numbers, packed: u32 n, then n little-endian float64s. */
  Float64s = 0x15,
  /** A latin1 string of under 64 characters: u8 n, then n bytes. */
  ShortLatin1 = 0x16,
  /** An array of under 256 elements (not packed): u8 n, then the n values. */
  ShortArray = 0x17,
  V8 = 0xf0,
  Bytes = 0xf1,
  Blob = 0xf2,
}

type TypedArrayCtor = new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayBufferView;
const typedKinds: TypedArrayCtor[] = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
];
const typedKindOf = new Map<unknown, number>(typedKinds.map((c, i) => [c.prototype, i]));
const kBufferKind = 255;
/** A blob's param0 for an ArrayBuffer's bytes (a nested big one: see Tag.BlobRef). */
const kArrayBufferKind = 253;
/**
 * Bytes from which a Buffer, typed array or ArrayBuffer inside an item gets
 * a segment of its own (Tag.BlobRef): copied once, into it, instead of into
 * the scratch buffer and then, with the whole record, into a blob. A nested
 * 64 MB Buffer took ~180-230 ms a put and get here, a top-level one ~75.
 */
const kNestedBlobMin = 1 << 20;

const kBail = new Error('multiproc codec: fall back to structured clone');
const kWide = /[^\x00-\xff]/;
const kMinI64 = -(2n ** 63n);
const kMaxI64 = 2n ** 63n - 1n;

/** An encoded item: `head` then `body` (if any) are the record's bytes. */
export interface Encoded {
  /** The first headLen bytes of `head` (often the shared scratch buffer; see detach()). */
  head: Uint8Array;
  headLen: number;
  body: Uint8Array | null;
  size: number;
  /** Holds references (handles, a blob segment) that must be released if never delivered. */
  refs: boolean;
  /**
   * The Blob segments this encoding made, still mapped here and pending
   * (layout.ts kBlobPending) until the record is committed: the writer
   * publishes them just before its commit (publishBlobs), and unmaps them
   * after it (unmapBlobs), or discard() gives them back.
   */
  blobs?: Segment[] | null;
}

/** Buffer's undocumented single-encoding fast paths (no encoding lookup per call). */
interface FastBuffer extends Buffer {
  latin1Write(s: string, offset: number, length?: number): number;
  ucs2Write(s: string, offset: number, length?: number): number;
  latin1Slice(start: number, end: number): string;
  ucs2Slice(start: number, end: number): string;
}
const fast = (b: Buffer): FastBuffer => b as FastBuffer;

// ---- encoder (one scratch buffer per thread, reused) ------------------------

let out = fast(Buffer.allocUnsafeSlow(64 * 1024));
let outView = new DataView(out.buffer, out.byteOffset, out.byteLength);
let out32 = new Int32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
/** A scratch buffer grown past this (an item of many small values) is dropped by an encode after one that used under a quarter of it. */
const kScratchKeep = 4 << 20;
/** How much of the scratch buffer the last fast encode used. */
let lastPos = 0;
let pos = 0;
let refs = false;
const taken: Handle[] = [];
const visited: object[] = [];
let nVisited = 0;
let visitedSet: Set<object> | null = null;
/**
 * Arrays and plain objects the fast encoder is inside of. Past kMaxDepth it
 * bails out to structured clone, which carries the item or refuses it at
 * put(): the decoder recurses too, with more stack a level, and an item the
 * encoder took (2,000 nested objects) overflowed the consumer's stack at
 * get(), after its record was consumed: lost (review helper-99).
 */
let depth = 0;
const kMaxDepth = 256;

function ensure(n: number): void {
  if (pos + n > out.length) grow(n); // the rare path apart: ensure() stays small enough to inline
}

function grow(n: number): void {
  let size = out.length * 2;
  while (size < pos + n) size *= 2;
  let bigger: FastBuffer;
  try {
    bigger = fast(Buffer.allocUnsafeSlow(size));
  } catch (e) {
    if (e instanceof RangeError) throw kBail; // too big for a scratch buffer: structured clone tries
    throw e;
  }
  // Every view made before any is swapped in: a throw here must leave the
  // three consistent. (Before, `>> 2` of a 2 GiB length was negative: the
  // Int32Array threw after `out` had grown, writeToRing then copied small
  // records from the stale word view, and every later message of that
  // thread was garbage: a pool worker that returned 1 GiB never ran another
  // task; helper-65.)
  const view = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
  const words = new Int32Array(bigger.buffer, bigger.byteOffset, bigger.byteLength >>> 2);
  out.copy(bigger, 0, 0, pos);
  out = bigger;
  outView = view;
  out32 = words;
}

/** Back to a small scratch buffer after a big item: the big one was kept for the thread's life. */
function shrinkScratch(): void {
  out = fast(Buffer.allocUnsafeSlow(64 * 1024));
  outView = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out32 = new Int32Array(out.buffer, out.byteOffset, out.byteLength >>> 2);
}

function visit(o: object): void {
  if (visitedSet !== null) {
    if (visitedSet.has(o)) throw kBail;
    visitedSet.add(o);
    return;
  }
  for (let i = 0; i < nVisited; i++) if (visited[i] === o) throw kBail;
  visited[nVisited++] = o;
  if (nVisited === 32) visitedSet = new Set(visited);
}

function resetVisited(): void {
  for (let i = 0; i < nVisited; i++) visited[i] = undefined as unknown as object;
  nVisited = 0;
  visitedSet = null;
}

function writeString(s: string): void {
  const n = s.length;
  ensure(5 + n * 2);
  const start = pos;
  if (n < 64) {
    // Tag.ShortLatin1: a one-byte length (3 bytes less a string, and a store less).
    // (`out` read once: a module-level let, it was loaded again for each byte.)
    const o = out;
    let p = start + 2;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) {
        p = -1;
        break;
      }
      o[p++] = c;
    }
    if (p >= 0) {
      o[start] = Tag.ShortLatin1;
      o[start + 1] = n;
      pos = p;
      return;
    }
  } else if (!kWide.test(s)) {
    out[start] = Tag.Latin1;
    outView.setUint32(start + 1, n, true);
    pos = start + 5 + out.latin1Write(s, start + 5, n);
    return;
  }
  out[start] = Tag.Utf16;
  outView.setUint32(start + 1, n, true);
  pos = start + 5 + out.ucs2Write(s, start + 5, n * 2);
}

// ---- object shapes --------------------------------------------------------------
//
// Messages repeat the same key lists. An object whose keys are all short latin1
// strings is written as Tag.Record: its key list as one byte block (cached per
// key list, so the encoder copies bytes instead of encoding each key) followed
// by the values. The key list travels in every record (a queue has many
// consumers, none of which can be assumed to have seen an earlier definition);
// the decoder recognises a block it has seen by comparing bytes, and builds the
// object with one object literal per key list (V8 allocates it with its final
// hidden class) instead of adding keys one at a time.

interface Shape {
  keys: string[];
  /** Tag.Record, u16 L, then the L-byte key block. */
  head: Uint8Array;
  /** head's whole little-endian int32 words: copied a word at a time (unaligned DataView stores), then its last bytes. */
  words: number[];
  /** Writes the values in key order (named loads, monomorphic for objects of one hidden class). */
  write: (v: object, w: (x: unknown) => void) => void;
}

function compileWrite(keys: string[]): Shape['write'] {
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    return new Function('v', 'w', keys.map((k) => `w(v[${JSON.stringify(k)}]);`).join('')) as Shape['write'];
  } catch {
    return (v, w) => {
      for (const k of keys) w((v as Record<string, unknown>)[k]);
    };
  }
}

interface ShapeNode {
  next: Map<string, ShapeNode>;
  /** The shape whose key list ends here; null when it cannot be a record (long or wide keys, __proto__). */
  shape: Shape | null | undefined;
}

const kMaxRecordKeys = 64;
/** Bounds the encoder's key-list tree (objects used as dictionaries would grow it forever). */
const kMaxShapeNodes = 4096;
const shapeRoot: ShapeNode = { next: new Map(), shape: undefined };
let shapeNodes = 0;
let lastShape: Shape | null = null;

function makeShape(keys: string[]): Shape | null {
  let len = 1;
  for (const k of keys) {
    if (k.length > 255 || k === '__proto__' || kWide.test(k)) return null;
    len += 1 + k.length;
  }
  if (len > 0xffff) return null;
  const head = Buffer.allocUnsafeSlow(3 + len);
  head[0] = Tag.Record;
  head.writeUInt16LE(len, 1);
  head[3] = keys.length;
  let p = 4;
  for (const k of keys) {
    head[p++] = k.length;
    p += fast(head).latin1Write(k, p, k.length);
  }
  const words: number[] = [];
  for (let i = 0; i + 4 <= head.length; i += 4) words.push(head.readInt32LE(i));
  return { keys, head, words, write: compileWrite(keys) };
}

function shapeOf(keys: string[]): Shape | null {
  const n = keys.length;
  const last = lastShape;
  if (last !== null && last.keys.length === n) {
    const lk = last.keys;
    let i = 0;
    while (i < n && lk[i] === keys[i]) i++;
    if (i === n) return last;
  }
  if (n > kMaxRecordKeys) return null;
  let node = shapeRoot;
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    let next = node.next.get(k);
    if (next === undefined) {
      if (shapeNodes >= kMaxShapeNodes) return null;
      shapeNodes++;
      next = { next: new Map(), shape: undefined };
      node.next.set(k, next);
    }
    node = next;
  }
  let shape = node.shape;
  if (shape === undefined) shape = node.shape = makeShape(keys);
  if (shape !== null) lastShape = shape;
  return shape;
}

function writeRaw(tagByte: number, bytes: Uint8Array): void {
  ensure(5 + bytes.length);
  out[pos] = tagByte;
  outView.setUint32(pos + 1, bytes.length, true);
  out.set(bytes, pos + 5);
  pos += 5 + bytes.length;
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

// The hot cases (strings, numbers, plain objects and arrays) are tested
// first and kept in small functions, the rare ones apart: one switch over
// every type, and every object through one big writeObject, made a
// {id, name, tags} item's encode ~13% slower (two builds alternated in one
// process).
function writeValue(v: unknown): void {
  if (typeof v === 'string') {
    writeString(v);
    return;
  }
  if (typeof v === 'number') {
    ensure(9);
    if ((v | 0) === v && (v !== 0 || 1 / v > 0)) {
      out[pos] = Tag.Int32;
      outView.setInt32(pos + 1, v, true);
      pos += 5;
    } else {
      out[pos] = Tag.Float64;
      outView.setFloat64(pos + 1, v, true);
      pos += 9;
    }
    return;
  }
  if (typeof v === 'object') {
    if (v === null) {
      ensure(1);
      out[pos++] = Tag.Null;
      return;
    }
    // Each getPrototypeOf comes after a read that makes V8 check v's map
    // (an array's length; the shared-object symbol): optimized code then
    // folds it into a constant for the maps it has seen, instead of calling
    // into the runtime (~8 ns each, two per {id, name, tags} item). Neither
    // read runs user code on an array or a plain object.
    if (Array.isArray(v)) {
      const n = v.length;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto === Array.prototype) writeArray(v, n);
      else writeObject(v, proto);
      return;
    }
    // (isShareable's test written out: as a call it was not always inlined,
    // and its map check then did not reach the getPrototypeOf below.)
    if (typeof (v as Partial<Shareable>)[kToHandle] === 'function') {
      writeShared(v);
      return;
    }
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) writePlain(v);
    else writeObject(v, proto);
    return;
  }
  writeScalar(v);
}

function writeScalar(v: unknown): void {
  switch (typeof v) {
    case 'boolean':
      ensure(1);
      out[pos++] = v ? Tag.True : Tag.False;
      return;
    case 'undefined':
      ensure(1);
      out[pos++] = Tag.Undefined;
      return;
    case 'bigint':
      if (v >= kMinI64 && v <= kMaxI64) {
        ensure(9);
        out[pos] = Tag.BigInt64;
        outView.setBigInt64(pos + 1, v, true);
        pos += 9;
      } else {
        const hex = (v < 0n ? -v : v).toString(16);
        ensure(6 + hex.length);
        out[pos] = Tag.BigIntHex;
        out[pos + 1] = v < 0n ? 1 : 0;
        outView.setUint32(pos + 2, hex.length, true);
        out.latin1Write(hex, pos + 6);
        pos += 6 + hex.length;
      }
      return;
    default:
      throw kBail; // function, symbol: structured clone reports them
  }
}

/** `n` is a.length, read once by the caller. */
function writeArray(a: unknown[], n: number): void {
  // Not a length an array can have (a Proxy's trap said so): structured clone
  // decides (it refuses a Proxy). Tested before writeShortArray, which takes
  // n as a count: `n < 16 && n >= 0` let 2.5 through (a count byte of 2 and
  // 3 elements written: a record the decoder rejects), and '3', true, null
  // (3, 1 and 0 elements travelled where structured clone refuses; review
  // helper-129).
  if (n >>> 0 !== n) throw kBail;
  if (n < kPackedMin) {
    writeShortArray(a, n);
    return;
  }
  // The item itself is not recorded in visited (a write barrier and a scan
  // saved): it can only recur through a cycle, and its first recurrence is
  // recorded, so the second bails out as any cycle does.
  if (++depth > 1) visit(a);
  if (depth > kMaxDepth) throw kBail;
  let i = 0;
  // Element i when it has been read already: every element is read once (a
  // getter or a Proxy trap runs once, as in structured clone). Here n >=
  // kPackedMin: element 0 is read first, to see whether to pack numbers.
  let next: unknown = a[0];
  let haveNext = true;
  if (typeof next === 'number') {
    i = writeNumbers(a, n, next);
    if (i === n) {
      depth--;
      return;
    }
    next = stoppedAt;
    stoppedAt = undefined;
  }
  if (i === 0) {
    ensure(5);
    if (n < 256) {
      out[pos] = Tag.ShortArray;
      out[pos + 1] = n;
      pos += 2;
    } else {
      out[pos] = Tag.Array;
      outView.setUint32(pos + 1, n, true);
      pos += 5;
    }
  }
  for (; i < n; i++) {
    let x: unknown;
    if (haveNext) {
      x = next;
      haveNext = false;
    } else x = a[i];
    if (x === undefined && !(i in a)) throw kBail; // a hole
    writeValue(x);
  }
  depth--;
}

/**
 * writeArray() for fewer than kPackedMin elements (`n` a uint32, checked by
 * writeArray), apart: a strings' test ahead of writeValue, and none of
 * the packed-numbers bookkeeping. An {id, name, tags: [3 strings]} item
 * encoded ~3% faster (two builds alternated in one process, both orders).
 */
function writeShortArray(a: unknown[], n: number): void {
  if (++depth > 1) visit(a); // (not the item itself: see writeArray)
  if (depth > kMaxDepth) throw kBail;
  ensure(2);
  out[pos] = Tag.ShortArray;
  out[pos + 1] = n;
  pos += 2;
  for (let i = 0; i < n; i++) {
    const x = a[i];
    if (typeof x === 'string') writeString(x);
    else if (x === undefined && !(i in a)) throw kBail; // a hole
    else writeValue(x);
  }
  depth--;
}

/**
 * Arrays of at least this many numbers are written packed (Tag.Int32s,
 * Tag.Float64s): a map's chunks of numbers and its results, encoded and
 * decoded a number at a time with a tag each, took most of a Pool(2) map's
 * time in the parent.
 */
const kPackedMin = 16;
/** Elements writeNumbers reserves room for at a time. */
const kNumbersBlock = 4096;
/** The element writeNumbers stopped at (see there). */
let stoppedAt: unknown;

/**
 * Writes a's elements packed while they are numbers (`first` is a[0],
 * already read): as int32s while they all are int32s (and not -0), then as
 * float64s. Returns n once all were
 * (the array is written), or the index of the first element that is not a
 * number: the array is then written as a Tag.Array of the elements before
 * it, and that element, already read, is left in stoppedAt for writeArray
 * to go on from. Each element is read once.
 */
function writeNumbers(a: unknown[], n: number, first: number): number {
  // Room is reserved a block at a time, not for all n up front: a sparse
  // array of a huge length (`a = [1]; a.length = 2 ** 28`) reserved 1 GiB
  // before its hole at index 1 sent it to structured clone (review helper-120).
  // grow() keeps the bytes before pos: pos covers what is written before each
  // reservation (it did not once, and a switch to float64s that grew the
  // buffer lost the int32s: helper-120).
  const head = pos;
  ensure(5 + 4 * Math.min(n, kNumbersBlock));
  let view = outView;
  let end = out.length;
  out[head] = Tag.Int32s;
  view.setUint32(head + 1, n, true);
  let p = head + 5;
  let i = 0;
  let x: unknown = first;
  for (; i < n; i++) {
    if (i > 0) x = a[i];
    if (typeof x !== 'number' || (x | 0) !== x || (x === 0 && 1 / x < 0)) break;
    if (p + 4 > end) {
      pos = p;
      ensure(4 * Math.min(n - i, kNumbersBlock));
      view = outView;
      end = out.length;
    }
    view.setInt32(p, x, true);
    p += 4;
  }
  let wide = false;
  if (i < n && typeof x === 'number') {
    // A number that is not an int32: the ones before it become float64s
    // (from the last, each read before its wider slot is written), and so do
    // the rest.
    pos = p;
    ensure(4 * i + 8 * Math.min(n - i, kNumbersBlock));
    view = outView;
    end = out.length;
    for (let j = i - 1; j >= 0; j--) view.setFloat64(head + 5 + 8 * j, view.getInt32(head + 5 + 4 * j, true), true);
    out[head] = Tag.Float64s;
    wide = true;
    p = head + 5 + 8 * i;
    view.setFloat64(p, x, true);
    p += 8;
    for (i++; i < n; i++) {
      x = a[i];
      if (typeof x !== 'number') break;
      if (p + 8 > end) {
        pos = p;
        ensure(8 * Math.min(n - i, kNumbersBlock));
        view = outView;
        end = out.length;
      }
      view.setFloat64(p, x, true);
      p += 8;
    }
  }
  if (i === n) {
    pos = p;
    return n;
  }
  // Element i is not a number (or is a hole): the numbers before it become ordinary values.
  const before = wide ? new Float64Array(i) : new Int32Array(i);
  for (let j = 0; j < i; j++) before[j] = wide ? view.getFloat64(head + 5 + 8 * j, true) : view.getInt32(head + 5 + 4 * j, true);
  out[head] = Tag.Array;
  pos = head + 5;
  for (let j = 0; j < i; j++) writeValue(before[j]);
  stoppedAt = x;
  return i;
}

/** An object whose prototype is Object.prototype or null. */
function writePlain(v: object): void {
  if (++depth > 1) visit(v); // (not the item itself: see writeArray)
  if (depth > kMaxDepth) throw kBail;
  const keys = Object.keys(v);
  const n = keys.length;
  const shape = n !== 0 ? shapeOf(keys) : null;
  if (shape !== null) {
    const head = shape.head;
    const hn = head.length;
    ensure(hn);
    const p = pos;
    const words = shape.words;
    const w = words.length;
    const view = outView;
    for (let i = 0; i < w; i++) view.setInt32(p + 4 * i, words[i]!, true);
    for (let i = w * 4; i < hn; i++) out[p + i] = head[i]!;
    pos = p + hn;
    shape.write(v, writeValue);
    depth--;
    return;
  }
  ensure(5);
  out[pos] = Tag.Object;
  outView.setUint32(pos + 1, n, true);
  pos += 5;
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    writeString(k);
    writeValue((v as Record<string, unknown>)[k]);
  }
  depth--;
}

/** Any other object: bytes, a Date, an Error, or a bail-out to structured clone. */
function writeObject(v: object, proto: unknown): void {
  if (ArrayBuffer.isView(v)) {
    visit(v);
    if (v.buffer instanceof SharedArrayBuffer) throw sharedBufferError();
    if (Buffer.isBuffer(v) && proto === Buffer.prototype) {
      if (v.length >= kNestedBlobMin) writeBlobRef(kBufferKind, v);
      else writeRaw(Tag.Buffer, v);
      return;
    }
    const kind = typedKindOf.get(proto);
    if (kind === undefined) throw kBail; // DataView, subclasses
    if (v.byteLength >= kNestedBlobMin) {
      writeBlobRef(kind, bytesOf(v));
      return;
    }
    ensure(6 + v.byteLength);
    out[pos] = Tag.TypedArray;
    out[pos + 1] = kind;
    outView.setUint32(pos + 2, v.byteLength, true);
    out.set(bytesOf(v), pos + 6);
    pos += 6 + v.byteLength;
    return;
  }
  if (proto === ArrayBuffer.prototype) {
    visit(v);
    const bytes = new Uint8Array(v as ArrayBuffer);
    if (bytes.length >= kNestedBlobMin) writeBlobRef(kArrayBufferKind, bytes);
    else writeRaw(Tag.ArrayBuffer, bytes);
    return;
  }
  if (proto === Date.prototype) {
    visit(v);
    ensure(9);
    out[pos] = Tag.Date;
    outView.setFloat64(pos + 1, (v as Date).getTime(), true);
    pos += 9;
    return;
  }
  // (Shared objects never get here: writeValue sends them to writeShared
  // first; an array whose prototype is not Array.prototype comes here
  // unchecked, and no shared class is an array.)
  if (isError(v)) {
    // Structured clone keeps only name (of built-in classes), message, stack
    // and cause: an fs error's `code` was lost on the way (see wire-error.ts).
    visit(v);
    const r = errorRecord(v);
    ensure(1);
    out[pos++] = Tag.Error;
    writeValue(r);
    return;
  }
  notSendable(v); // a Pool, a Process, a SharedArrayBuffer: a TypeError that says why
  throw kBail;
}

/** Segments made by this encode for its big nested views: kept mapped until it succeeds (see encodeOnce). */
const madeBlobs: Segment[] = [];

function writeBlobRef(kind: number, bytes: Uint8Array): void {
  const seg = Segment.create(Kind.Blob, bytes.byteLength, [kind, 0]);
  madeBlobs.push(seg);
  new Uint8Array(seg.buffer, seg.payloadOffset, bytes.byteLength).set(bytes);
  const n = seg.name.length;
  ensure(5 + n);
  out[pos] = Tag.BlobRef;
  outView.setUint32(pos + 1, n, true);
  out.latin1Write(seg.name, pos + 5, n);
  pos += 5 + n;
  refs = true; // the reference create() gave travels with the record: a record never delivered gives it back (discard)
}

/**
 * After an encode: its blobs' references travel with the record (ok: they
 * are returned, still mapped, for the writer to publish at its commit), or
 * go now (it failed, or fell back to structured clone).
 */
function settleMadeBlobs(ok: boolean): Segment[] | null {
  if (!ok) {
    for (const seg of madeBlobs) seg.close(); // the last reference: unlinked
    madeBlobs.length = 0;
    return null;
  }
  const made = madeBlobs.splice(0);
  for (const seg of made) seg.forget(); // not an attachment of this process: its reference is the record's
  return made;
}

function writeShared(v: object): void {
  const h = toHandle(v as Parameters<typeof toHandle>[0]);
  taken.push(h);
  refs = true;
  ensure(1);
  out[pos++] = Tag.Shared;
  writeValue(h);
}

/**
 * A shared object (Value, Queue, Lock...) inside a class instance or
 * another object that reduce() does not walk: structured clone then met
 * its internals, and said only "function Int32Array() could not be cloned".
 * Where it is, for the message; null when there is none (a bounded search).
 */
function hiddenShared(item: unknown): string | null {
  const seen = new Set<object>();
  // Objects visited, and values scanned (elements, entries, keys): plain
  // values cost only a scan, so a big array of numbers does not use up the
  // objects' budget before the fields after it are looked at.
  let budget = 2000;
  let scan = 200_000;
  const walk = (v: unknown, path: string, holder: string | null, depth: number): string | null => {
    if (typeof v !== 'object' || v === null || seen.has(v) || --budget < 0 || depth > 12) return null;
    // Bytes hold no objects (and listing a 4M-element typed array's keys took a second).
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return null;
    seen.add(v);
    if (isShareable(v)) {
      const name = (Object.getPrototypeOf(v)?.constructor as { name?: string } | undefined)?.name || 'shared object';
      return holder === null ? null : `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name} (a shared object) inside ${holder} (at item${path})`;
    }
    const proto = Object.getPrototypeOf(v);
    // (Errors too: reduce() carries them whole, their shared objects as handles.)
    const plain = proto === Object.prototype || proto === null || Array.isArray(v) || v instanceof Map || v instanceof Set || isError(v);
    const inner = holder ?? (plain ? null : `an instance of ${(proto?.constructor as { name?: string } | undefined)?.name || 'a class'}`);
    if (v instanceof Map) {
      for (const [k, x] of v) {
        if (--scan < 0) return null;
        const r = walk(x, `${path}.get(${describeValue(k)})`, inner, depth + 1);
        if (r !== null) return r;
      }
      return null;
    }
    if (v instanceof Set) {
      for (const x of v) {
        if (--scan < 0) return null;
        const r = walk(x, `${path} (a Set member)`, inner, depth + 1);
        if (r !== null) return r;
      }
      return null;
    }
    if (Array.isArray(v)) {
      // By index, within the budget: Object.keys() of a million-element array made a million strings first.
      for (let i = 0; i < v.length && --scan >= 0; i++) {
        let x: unknown;
        try {
          x = v[i];
        } catch {
          continue;
        }
        const r = walk(x, `${path}[${i}]`, inner, depth + 1);
        if (r !== null) return r;
      }
      return null;
    }
    let keys: string[];
    try {
      keys = Object.keys(v);
      // An Error's cause and errors are not enumerable, and travel.
      if (isError(v)) {
        if (Object.hasOwn(v, 'cause')) keys.push('cause');
        if (v instanceof AggregateError) keys.push('errors');
      }
    } catch {
      return null; // a Proxy whose trap throws
    }
    for (const k of keys) {
      if (--scan < 0) return null;
      let x: unknown;
      try {
        x = (v as Record<string, unknown>)[k];
      } catch {
        continue;
      }
      const r = walk(x, Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`, inner, depth + 1);
      if (r !== null) return r;
    }
    return null;
  };
  try {
    return walk(item, '', null, 0);
  } catch {
    return null;
  }
}

function hiddenSharedError(hidden: string, cause: unknown): TypeError {
  return new TypeError(
    `Cannot send a value to another process: it holds ${hidden}. Shared objects travel inside plain objects, arrays, Maps and Sets only ` +
      '(a class instance is structured-cloned field by field, and a shared object\'s fields are not the object): pass it in one of those, or on its own',
    cause === undefined ? undefined : { cause },
  );
}

/**
 * V8's stack overflow, not any RangeError: a getter's own (a port out of
 * range) must reach the caller as it is, not as "nested too deeply"
 * (review helper-100).
 */
function isStackOverflow(e: unknown): boolean {
  return e instanceof RangeError && e.message === 'Maximum call stack size exceeded';
}

function cloneError(item: unknown, cause: unknown): TypeError {
  // First: the walk below would overflow again on such an item.
  if (isStackOverflow(cause)) {
    return new TypeError(`Cannot send a value to another process: it is nested too deeply to be serialized (${(cause as Error).message}). Flatten it, or send its parts as separate items`, { cause });
  }
  const hidden = hiddenShared(item);
  if (hidden !== null) return hiddenSharedError(hidden, cause);
  const what = typeof item === 'function' || typeof item === 'symbol' ? describeValue(item) : 'a value';
  return new TypeError(
    `Cannot send ${what} to another process: it is not structured-cloneable (functions, symbols, and objects holding them cannot travel). ${
      cause instanceof Error ? cause.message : String(cause)
    }`,
    { cause },
  );
}

// The common result of encode(), reused (one allocation less per item): like
// the bytes it points to, it is valid until the next encode; detach() copies both.
const scratchEnc: Encoded = { head: out, headLen: 0, body: null, size: 0, refs: false, blobs: null };

function scratch(head: Uint8Array, headLen: number, body: Uint8Array | null, size: number, hasRefs: boolean, blobs: Segment[] | null = null): Encoded {
  const e = scratchEnc;
  e.head = head;
  e.headLen = headLen;
  e.body = body;
  e.size = size;
  e.refs = hasRefs;
  e.blobs = blobs;
  return e;
}

/**
 * Encodes `item` into the thread's scratch buffer (the result and its bytes
 * are valid until the next encode; see detach()). Throws TypeError for what structured clone refuses,
 * having released any reference it took.
 */
export function encode(item: unknown): Encoded {
  // User code can run in the middle of an encode (a getter, a Proxy trap); a
  // put from there would reuse this thread's scratch buffer under the item
  // being encoded. Refused instead of corrupting it.
  if (encoding) {
    throw new TypeError('Cannot put or send from inside a getter (or Proxy trap) of an item that is being encoded: do it before or after the put that reads it');
  }
  encoding = true;
  try {
    return encodeOnce(item);
  } finally {
    encoding = false;
  }
}

let encoding = false;

function encodeOnce(item: unknown): Encoded {
  // Dropped once an encode has used little of it (a run of big items keeps it:
  // regrowing it each time cost them ~15%; review helper-69). The last
  // encode's result, valid until this one, may point into it: not reused.
  if (out.length > kScratchKeep && lastPos < out.length >>> 2) shrinkScratch();
  pos = 0;
  refs = false;
  depth = 0;
  // Top-level Buffers and typed arrays are not copied into the scratch buffer:
  // the record is a 5/6-byte head plus the caller's bytes.
  if (typeof item === 'object' && item !== null && ArrayBuffer.isView(item)) {
    if (item.buffer instanceof SharedArrayBuffer) throw sharedBufferError();
    const proto = Object.getPrototypeOf(item);
    if (Buffer.isBuffer(item) && proto === Buffer.prototype) {
      out[0] = Tag.Buffer;
      outView.setUint32(1, item.length, true);
      return scratch(out, 5, item, 5 + item.length, false);
    }
    const kind = typedKindOf.get(proto);
    if (kind !== undefined) {
      out[0] = Tag.TypedArray;
      out[1] = kind;
      outView.setUint32(2, item.byteLength, true);
      return scratch(out, 6, bytesOf(item), 6 + item.byteLength, false);
    }
  }
  try {
    writeValue(item);
    if (nVisited !== 0) resetVisited();
    if (taken.length !== 0) taken.length = 0;
    const blobs = madeBlobs.length !== 0 ? settleMadeBlobs(true) : null;
    lastPos = pos;
    return scratch(out, pos, null, pos, refs, blobs);
  } catch (e) {
    resetVisited();
    releaseTaken();
    settleMadeBlobs(false);
    // Too deep for the fast path (or a scratch buffer it could not grow,
    // see grow()): structured clone tries. Anything else is the item's own
    // (a getter's RangeError too: falling back ran the getter again, and one
    // that failed only once was swallowed; review helper-104).
    if (e !== kBail && !isStackOverflow(e)) throw e;
  }
  return encodeV8(item);
}

function encodeV8(item: unknown): Encoded {
  // Checked first, not only when structured clone fails: a shared object
  // whose fields clone (a Lock, an Event, a Queue: #private state, nothing
  // enumerable) arrived as {} without a word.
  let hidden: ReturnType<typeof hiddenShared>;
  let reduced: unknown;
  try {
    hidden = hiddenShared(item);
    if (hidden === null) reduced = reduce(item);
  } catch (e) {
    // Too deep for their walks: a TypeError at put() like structured clone's refusal (it was a RangeError).
    if (isStackOverflow(e)) throw cloneError(item, e);
    throw e;
  }
  if (hidden !== null) throw hiddenSharedError(hidden, undefined);
  const hasRefs = reduced !== item;
  let bytes: Buffer;
  try {
    bytes = v8.serialize(reduced);
  } catch (e) {
    if (hasRefs) releaseHandles(reduced);
    if (e instanceof Error && /SharedArrayBuffer/.test(e.message)) throw Object.assign(sharedBufferError(), { cause: e });
    throw cloneError(item, e);
  }
  pos = 0;
  ensure(2);
  out[0] = Tag.V8;
  out[1] = hasRefs ? 1 : 0; // rebuild() only when needed: it would fill array holes
  return { head: out, headLen: 2, body: bytes, size: 2 + bytes.length, refs: hasRefs, blobs: null };
}

/**
 * Its own head, not the scratch buffer: a sendBytes() from a getter of an
 * item being encoded wrote its tag over that item's first byte, which then
 * arrived as a Buffer of garbage (review helper-99).
 */
const kBytesHead = Uint8Array.of(Tag.Bytes);

/** Raw bytes (sendBytes): delivered as a Buffer, never serialized. */
export function encodeBytes(bytes: Uint8Array): Encoded {
  return { head: kBytesHead, headLen: 1, body: bytes, size: 1 + bytes.length, refs: false, blobs: null };
}

/** A copy of `enc` that no later encode() overwrites and no change to the caller's buffers affects (for puts that must wait). */
export function detach(enc: Encoded, copyBody = true): Encoded {
  const head = enc.head === out ? Uint8Array.prototype.slice.call(out, 0, enc.headLen) : enc.head;
  // The body is the caller's own Buffer: a put that waits must not depend on
  // it (transferred or detached meanwhile, set() would throw between the
  // reservation and the commit, and the record would stay "being written").
  const body = copyBody && enc.body !== null ? Uint8Array.prototype.slice.call(enc.body) : enc.body;
  if (head === enc.head && body === enc.body && enc !== scratchEnc) return enc;
  return { head, headLen: enc.headLen, body, size: enc.size, refs: enc.refs, blobs: enc.blobs };
}

/** Copies an encoded item to dst[offset...]. */
export function writeTo(enc: Encoded, dst: Uint8Array, offset: number): void {
  const n = enc.headLen;
  const head = enc.head;
  // Small records: a loop beats allocating the subarray that set() needs.
  if (n <= 192) for (let i = 0; i < n; i++) dst[offset + i] = head[i];
  else dst.set(n === head.length ? head : head.subarray(0, n), offset);
  if (enc.body !== null) dst.set(enc.body, offset + n);
}

/**
 * writeTo() into a ring's data area, given also as Int32 words: a head still in
 * the scratch buffer is copied a word at a time (a quarter of the stores into
 * memory the consumer's core reads next). `offset` must be 4-aligned, and up to
 * 3 bytes after the head may be overwritten (a record's alignment slack, or
 * where the body goes next).
 */
export function writeToRing(enc: Encoded, dst: Uint8Array, dst32: Int32Array, offset: number): void {
  const n = enc.headLen;
  if (enc.head !== out || n > 256 || (offset & 3) !== 0) {
    writeTo(enc, dst, offset);
    return;
  }
  const w = (n + 3) >> 2;
  const base = offset >> 2;
  const src32 = out32;
  for (let i = 0; i < w; i++) dst32[base + i] = src32[i];
  if (enc.body !== null) dst.set(enc.body, offset + n);
}

/**
 * The scratch buffer as words, when `enc` is a small record wholly in it (no
 * body, no references, no blobs: nothing to do between the copy and the
 * commit), for Ring.tryPutWords; else null. Valid until the next encode.
 */
export function scratchWordsOf(enc: Encoded): Int32Array | null {
  return enc.head === out && enc.body === null && !enc.refs && !enc.blobs && enc.headLen <= 256 ? out32 : null;
}

/** Releases what an encoded item holds when it will never be delivered. */
export function discard(enc: Encoded): void {
  if (!enc.refs) return;
  enc.refs = false; // once
  const buf = Buffer.alloc(enc.size);
  writeTo(enc, buf, 0);
  const fresh: object[] = [];
  try {
    collectFresh(fresh, () => decodeFrom(buf, 0, buf.length)); // receiving it ourselves adopts and drops every reference
  } catch {
    // the references it could release are released
  } finally {
    releaseReadBlobs();
    unmapBlobs(enc);
    // Attached only to drop the references, as releaseHandles() does: left to
    // GC, a pipe end in an item whose put() failed stayed open after its user
    // closed it (the peer's recv() never saw EOF), and a closed queue's segment stayed.
    for (const obj of fresh) disposeShared(obj);
  }
}

/**
 * The writer, its record written and about to be committed: the blobs it
 * names are no longer this process's alone (kBlobPending cleared). Nothing
 * may come between this and the commit: a death in between leaves them to
 * the tracker at the end of the tree, as before there was a flag.
 */
export function publishBlobs(enc: Encoded): void {
  const blobs = enc.blobs;
  if (blobs) for (let i = 0; i < blobs.length; i++) blobs[i]!.publish();
}

/** After the commit (or a discard): this process's mappings of the blobs go now, not at GC. */
export function unmapBlobs(enc: Encoded): void {
  const blobs = enc.blobs;
  if (!blobs) return;
  enc.blobs = null;
  for (const seg of blobs) native.unmap(seg.buffer);
}

function releaseTaken(): void {
  for (const h of taken) releaseHandles(h);
  taken.length = 0;
}

// ---- big items ---------------------------------------------------------------

/**
 * Moves an encoded item into its own segment (Kind.Blob) and returns the
 * small record that names it. Raw Buffers / typed arrays are stored as their
 * bytes, so the receiver gets a view over the mapping without another copy.
 */
export function toBlob(enc: Encoded): Encoded {
  const headTag = enc.head[0];
  const raw = headTag === Tag.Buffer || headTag === Tag.TypedArray || headTag === Tag.Bytes;
  const skip = raw ? enc.headLen : 0;
  const rawKind = headTag === Tag.TypedArray ? enc.head[1] : headTag === Tag.Bytes ? 254 : kBufferKind;
  const seg = Segment.create(Kind.Blob, enc.size - skip, [raw ? rawKind : -1, 0]);
  const dst = new Uint8Array(seg.buffer, seg.payloadOffset, enc.size - skip);
  if (raw) dst.set(enc.body!, 0);
  else writeTo(enc, dst, 0);
  // The reference create() gave us travels with the record. Our mapping
  // stays until the record is committed (the writer publishes the blob
  // there, then unmaps it: see publishBlobs), not until the GC gets to it.
  seg.forget();
  const blobs = enc.blobs ? [...enc.blobs, seg] : [seg];
  const name = Buffer.from(seg.name, 'latin1');
  const head = Buffer.allocUnsafe(6 + name.length);
  head[0] = Tag.Blob;
  head[1] = raw ? 0 : 1;
  head.writeUInt32LE(name.length, 2);
  name.copy(head, 6);
  return { head, headLen: head.length, body: null, size: head.length, refs: true, blobs };
}

/**
 * Blob segments read by the take in progress. Their names are unlinked only
 * once the record naming them is consumed (head moved past it; the channel
 * calls releaseReadBlobs after every take): a consumer killed in between
 * leaves the record, and the segment it names, to the next consumer. (A
 * consumer killed after the move and before the release leaves the segment
 * to the tracker, at the end of the process tree: a late unlink, not a lost
 * item.)
 */
export const readBlobs: { seg: Segment; unmap: boolean }[] = [];

export function releaseReadBlobs(): void {
  if (readBlobs.length === 0) return;
  for (const { seg, unmap } of readBlobs.splice(0)) {
    // Out of this process's holder slot before the reference goes (holders.ts).
    seg.forget();
    try {
      seg.unretain(); // the last reference: unlinks the name
    } finally {
      if (unmap) native.unmap(seg.buffer);
    }
  }
}

function readBlob(): unknown {
  const form = src[rpos++];
  const n = srcView.getUint32(rpos, true);
  const name = src.latin1Slice(rpos + 4, rpos + 4 + n);
  rpos += 4 + n;
  const seg = Segment.attach(name, Kind.Blob, true);
  if (form === 0) return rawBlob(seg);
  readBlobs.push({ seg, unmap: true });
  const buf = Buffer.from(seg.buffer, seg.payloadOffset, seg.payloadBytes);
  return decodeFrom(buf, 0, buf.length);
}

/** A blob of raw bytes: a zero-copy view (it keeps the mapping alive; the name goes after the take), an ArrayBuffer a copy. */
function rawBlob(seg: Segment): unknown {
  const kind = seg.param(0);
  if (kind === kArrayBufferKind) {
    readBlobs.push({ seg, unmap: true });
    return seg.buffer.slice(seg.payloadOffset, seg.payloadOffset + seg.payloadBytes);
  }
  readBlobs.push({ seg, unmap: false });
  if (kind === kBufferKind || kind === 254) return Buffer.from(seg.buffer, seg.payloadOffset, seg.payloadBytes);
  const ctor = typedKinds[kind] as unknown as { new (b: ArrayBuffer, o: number, l: number): unknown; BYTES_PER_ELEMENT: number } | undefined;
  if (ctor === undefined) throw new Error(`multiproc codec: bad blob kind ${kind}`);
  return new ctor(seg.buffer, seg.payloadOffset, seg.payloadBytes / ctor.BYTES_PER_ELEMENT);
}

// ---- decoder -------------------------------------------------------------------

let src: FastBuffer = out;
let srcView: DataView = outView;
let rpos = 0;

const fcc = String.fromCharCode;

/**
 * One string allocation for short strings (no native call, no per-char
 * concatenation). Up to kShortString bytes: a latin1Slice() call costs about
 * what fromCharCode of 20 arguments does (measured: 16 bytes 80 -> 51 ns a
 * string with these cases than with 8 and a concatenation, 24 bytes even).
 */
function shortLatin1(p: number, n: number): string {
  const b = src;
  switch (n) {
    case 0: return '';
    case 1: return fcc(b[p]);
    case 2: return fcc(b[p], b[p + 1]);
    case 3: return fcc(b[p], b[p + 1], b[p + 2]);
    case 4: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3]);
    case 5: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4]);
    case 6: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5]);
    case 7: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6]);
    case 8: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    case 9: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8]);
    case 10: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9]);
    case 11: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10]);
    case 12: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11]);
    case 13: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12]);
    case 14: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13]);
    case 15: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13], b[p + 14]);
    case 16: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13], b[p + 14], b[p + 15]);
    case 17: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13], b[p + 14], b[p + 15], b[p + 16]);
    case 18: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13], b[p + 14], b[p + 15], b[p + 16], b[p + 17]);
    case 19: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13], b[p + 14], b[p + 15], b[p + 16], b[p + 17], b[p + 18]);
    case 20: return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7], b[p + 8], b[p + 9], b[p + 10], b[p + 11], b[p + 12], b[p + 13], b[p + 14], b[p + 15], b[p + 16], b[p + 17], b[p + 18], b[p + 19]);
    default: throw new RangeError(`shortLatin1: ${n} bytes`);
  }
}

const kShortString = 20;

// Short string values repeat (tags, states, names of things): up to 8 bytes,
// a string is known exactly by its length and two int32 reads of its bytes,
// and a direct-mapped cache returns the string decoded last time instead of
// allocating one (measured: ~12 ns less a hit, and less garbage). Strings
// are values: which copy a get returns cannot be told apart.
const kCachedString = 8;
const kStrSlots = 1024;
const strW0 = new Int32Array(kStrSlots);
const strW1 = new Int32Array(kStrSlots);
/** 0: an empty slot (n >= 1 here). */
const strLen = new Uint8Array(kStrSlots);
const strVal: string[] = new Array<string>(kStrSlots).fill('');

/** The latin1 string of src[p, p + n). */
function latin1At(p: number, n: number): string {
  if (n <= kCachedString) return n === 0 ? '' : cachedLatin1(p, n);
  return n <= kShortString ? shortLatin1(p, n) : src.latin1Slice(p, p + n);
}

/** The latin1 string of src[p, p + n), 1 <= n <= kCachedString. */
function cachedLatin1(p: number, n: number): string {
  let w0: number;
  let w1 = 0;
  if (n >= 4) {
    // Bytes [p, p + 4) and [p + n - 4, p + n): every byte, none past the string.
    w0 = srcView.getInt32(p, true);
    w1 = srcView.getInt32(p + n - 4, true);
  } else {
    const b = src;
    w0 = n === 1 ? b[p]! : n === 2 ? b[p]! | (b[p + 1]! << 8) : b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
  }
  const slot = Math.imul(w0 ^ Math.imul(w1 ^ n, 0x9e3779b1), 0x85ebca6b) >>> 22; // kStrSlots = 2 ** 10
  if (strLen[slot] === n && strW0[slot] === w0 && strW1[slot] === w1) return strVal[slot]!;
  const s = shortLatin1(p, n);
  strLen[slot] = n;
  strW0[slot] = w0;
  strW1[slot] = w1;
  strVal[slot] = s;
  return s;
}

function readString(t: number): string {
  const n = srcView.getUint32(rpos, true);
  rpos += 4;
  if (t === Tag.Latin1) {
    const start = rpos;
    rpos += n;
    return latin1At(start, n);
  }
  const start = rpos;
  rpos += n * 2;
  return src.ucs2Slice(start, rpos);
}

// Object keys repeat from message to message: decoding them to the same
// string objects saves both the allocation and V8's internalization on store.
const kKeyCacheSize = 4096;
const keyCache: (string | undefined)[] = new Array(kKeyCacheSize);

function readKey(): string {
  const t = src[rpos];
  if (t === Tag.ShortLatin1 || t === Tag.Latin1) {
    const short = t === Tag.ShortLatin1;
    const n = short ? src[rpos + 1]! : srcView.getUint32(rpos + 1, true);
    if (n > 0 && n <= 24) {
      const start = rpos + (short ? 2 : 5);
      let h = n;
      for (let i = 0; i < n; i++) h = (Math.imul(h, 31) + src[start + i]) | 0;
      const slot = (h ^ (h >>> 15)) & (kKeyCacheSize - 1);
      const hit = keyCache[slot];
      if (hit !== undefined && hit.length === n) {
        let same = true;
        for (let i = 0; i < n; i++) {
          if (hit.charCodeAt(i) !== src[start + i]) {
            same = false;
            break;
          }
        }
        if (same) {
          rpos = start + n;
          return hit;
        }
      }
      rpos = start + n;
      const k = latin1At(start, n);
      keyCache[slot] = k;
      return k;
    }
  }
  rpos++;
  if (t === Tag.ShortLatin1) {
    const n = src[rpos]!;
    rpos += 1 + n;
    return latin1At(rpos - n, n);
  }
  if (t !== Tag.Latin1 && t !== Tag.Utf16) throw new Error(`multiproc codec: bad key tag ${t}`);
  return readString(t);
}

// Decoder side of Tag.Record: key blocks seen before, by a hash of their bytes.
type Build = (read: () => unknown) => Record<string, unknown>;

interface DecShape {
  block: Uint8Array;
  /** The block's whole little-endian int32 words, compared four bytes at a time. */
  words: number[];
  build: Build;
}

const kDecShapes = 1024;
const decShapes: (DecShape | undefined)[] = new Array(kDecShapes);
let lastDec: DecShape | null = null;

function sameBlock(shape: DecShape, start: number, n: number): boolean {
  const block = shape.block;
  if (block.length !== n) return false;
  // A word at a time (unaligned DataView reads), then the last bytes: the
  // byte loop was a tenth of a small record's decode.
  const words = shape.words;
  const w = words.length;
  const view = srcView;
  for (let i = 0; i < w; i++) if (words[i] !== view.getInt32(start + 4 * i, true)) return false;
  const b = src;
  for (let i = w * 4; i < n; i++) if (block[i] !== b[start + i]) return false;
  return true;
}

/** An object literal with these keys, its values read in order (keys are latin1, never __proto__). */
function compileBuild(keys: string[]): Build {
  if (keys.length <= kMaxRecordKeys) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      return new Function('r', `return {${keys.map((k) => `${JSON.stringify(k)}: r()`).join(', ')}};`) as Build;
    } catch {
      // code generation from strings disallowed (--disallow-code-generation-from-strings)
    }
  }
  return (read) => {
    const o: Record<string, unknown> = {};
    for (const k of keys) o[k] = read();
    return o;
  };
}

function readRecord(): Record<string, unknown> {
  const b = src;
  const len = b[rpos] | (b[rpos + 1] << 8);
  const start = rpos + 2;
  rpos = start + len;
  let shape = lastDec;
  if (shape === null || !sameBlock(shape, start, len)) {
    let h = len;
    for (let i = 0; i < len; i++) h = (Math.imul(h, 31) + b[start + i]) | 0;
    const slot = (h ^ (h >>> 15)) & (kDecShapes - 1);
    shape = decShapes[slot] ?? null;
    if (shape === null || !sameBlock(shape, start, len)) {
      const n = b[start];
      const keys: string[] = [];
      let p = start + 1;
      for (let i = 0; i < n; i++) {
        const kn = b[p];
        keys.push(b.latin1Slice(p + 1, p + 1 + kn));
        p += 1 + kn;
      }
      if (p !== start + len || keys.includes('__proto__') || new Set(keys).size !== n) {
        throw new Error(`multiproc codec: bad record key list at ${start}`);
      }
      const block = Uint8Array.prototype.slice.call(b, start, start + len);
      const words: number[] = [];
      for (let i = 0; i + 4 <= len; i += 4) words.push(block[i]! | (block[i + 1]! << 8) | (block[i + 2]! << 16) | (block[i + 3]! << 24));
      shape = { block, words, build: compileBuild(keys) };
      decShapes[slot] = shape;
    }
    lastDec = shape;
  }
  return shape.build(readValue);
}

// Small Buffers are cut from a pool of our own, like Buffer.allocUnsafe does
// from Node's 8 KiB one, but a larger pool: a new ArrayBuffer every 8 KiB was
// a good part of receiving 1 KB Buffers. (As with Node's pool, a Buffer kept
// alive keeps its whole pool alive: at most kPoolBytes.)
const kPoolBytes = 64 * 1024;
const kPoolMax = 2048;
let pool: ArrayBuffer = new ArrayBuffer(0);
let poolU8 = new Uint8Array(pool);
let poolOff = kPoolBytes;

function copyToBuffer(from: Buffer, start: number, n: number): Buffer {
  const part = from.subarray(start, start + n);
  if (n === 0 || n > kPoolMax) return Buffer.from(part); // a copy (and set() refuses an offset past a used-up pool)
  if (poolOff + n > kPoolBytes) {
    pool = Buffer.allocUnsafeSlow(kPoolBytes).buffer as ArrayBuffer;
    poolU8 = new Uint8Array(pool);
    poolOff = 0;
  }
  const off = poolOff;
  poolU8.set(part, off);
  poolOff = (off + n + 7) & ~7;
  return Buffer.from(pool, off, n);
}

function copyOut(n: number): ArrayBuffer {
  const ab = new ArrayBuffer(n);
  new Uint8Array(ab).set(src.subarray(rpos, rpos + n));
  rpos += n;
  return ab;
}

/**
 * Every decoded array comes from this one allocation site: V8 then gives
 * arrays of numbers the same map whether they came packed or not (an array
 * site that has held a string starts its arrays as generic ones, another
 * would start them as small-integer ones), and code that receives both (a
 * pool worker's item loop: one-item jobs and big chunks) is not
 * deoptimized by the second kind.
 */
function newArray(n: number): unknown[] {
  return new Array(n);
}

function readValue(): unknown {
  const t = src[rpos++];
  switch (t) {
    case Tag.Undefined:
      return undefined;
    case Tag.Null:
      return null;
    case Tag.False:
      return false;
    case Tag.True:
      return true;
    case Tag.Int32: {
      const v = srcView.getInt32(rpos, true);
      rpos += 4;
      return v;
    }
    case Tag.Float64: {
      const v = srcView.getFloat64(rpos, true);
      rpos += 8;
      return v;
    }
    case Tag.BigInt64: {
      const v = srcView.getBigInt64(rpos, true);
      rpos += 8;
      return v;
    }
    case Tag.BigIntHex: {
      const neg = src[rpos] === 1;
      const n = srcView.getUint32(rpos + 1, true);
      const mag = BigInt(`0x${src.latin1Slice(rpos + 5, rpos + 5 + n)}`);
      rpos += 5 + n;
      return neg ? -mag : mag;
    }
    case Tag.ShortLatin1: {
      const n = src[rpos]!;
      const start = rpos + 1;
      rpos = start + n;
      return latin1At(start, n);
    }
    case Tag.Latin1:
    case Tag.Utf16:
      return readString(t);
    case Tag.ShortArray: {
      const n = src[rpos++]!;
      const a = newArray(n);
      for (let i = 0; i < n; i++) a[i] = readValue();
      return a;
    }
    case Tag.Array: {
      const n = srcView.getUint32(rpos, true);
      rpos += 4;
      const a = newArray(n);
      for (let i = 0; i < n; i++) a[i] = readValue();
      return a;
    }
    case Tag.Int32s: {
      const n = srcView.getUint32(rpos, true);
      const view = srcView;
      const at = rpos + 4;
      rpos = at + 4 * n;
      const a = newArray(n);
      for (let i = 0; i < n; i++) a[i] = view.getInt32(at + 4 * i, true);
      return a;
    }
    case Tag.Float64s: {
      const n = srcView.getUint32(rpos, true);
      const view = srcView;
      const at = rpos + 4;
      rpos = at + 8 * n;
      const a = newArray(n);
      for (let i = 0; i < n; i++) a[i] = view.getFloat64(at + 8 * i, true);
      return a;
    }
    case Tag.Object: {
      const n = srcView.getUint32(rpos, true);
      rpos += 4;
      const o: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const k = readKey();
        const v = readValue();
        if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        else o[k] = v;
      }
      return o;
    }
    case Tag.Buffer: {
      const n = srcView.getUint32(rpos, true);
      rpos += 4;
      const b = copyToBuffer(src, rpos, n);
      rpos += n;
      return b;
    }
    case Tag.TypedArray: {
      const kind = src[rpos];
      const n = srcView.getUint32(rpos + 1, true);
      rpos += 5;
      const ctor = typedKinds[kind] as unknown as { new (b: ArrayBuffer): unknown } | undefined;
      if (ctor === undefined) throw new Error(`multiproc codec: bad typed array kind ${kind}`);
      return new ctor(copyOut(n));
    }
    case Tag.ArrayBuffer: {
      const n = srcView.getUint32(rpos, true);
      rpos += 4;
      return copyOut(n);
    }
    case Tag.Date: {
      const v = srcView.getFloat64(rpos, true);
      rpos += 8;
      return new Date(v);
    }
    case Tag.Record:
      return readRecord();
    case Tag.Shared:
      return fromHandle(readValue() as Handle);
    case Tag.Error:
      return readError();
    case Tag.BlobRef: {
      const n = srcView.getUint32(rpos, true);
      const name = src.latin1Slice(rpos + 4, rpos + 4 + n);
      rpos += 4 + n;
      return rawBlob(Segment.attach(name, Kind.Blob, true));
    }
    default:
      throw new Error(`multiproc codec: unknown tag 0x${t.toString(16)} at ${rpos - 1}`);
  }
}

function readError(): Error {
  const at = rpos - 1;
  const r = readValue();
  if (!isErrorRecord(r)) throw new Error(`multiproc codec: bad error record at ${at}`);
  return errorFromRecord(r);
}

/**
 * Node's deserializer returns Buffers, typed arrays and DataViews as views
 * into its input (a misaligned one into a copy cut from Node's Buffer pool),
 * so their `.buffer` held the rest of the message, or whatever else the pool
 * held: unrelated memory of the process. Each gets a fresh ArrayBuffer of its
 * own, as structured clone gives (and the input, ring memory that is reused
 * at once, needs no copy first).
 */
class FreshDeserializer extends v8.DefaultDeserializer {
  // Node's documented hook (v8.Deserializer#_readHostObject), absent from @types/node.
  _readHostObject(): unknown {
    const v = (v8.DefaultDeserializer.prototype as unknown as { _readHostObject(): ArrayBufferView })._readHostObject.call(this);
    const ab = new ArrayBuffer(v.byteLength);
    new Uint8Array(ab).set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    if (Buffer.isBuffer(v)) return Buffer.from(ab);
    if (v instanceof DataView) return new DataView(ab);
    return new (v.constructor as new (b: ArrayBuffer) => ArrayBufferView)(ab);
  }
}

/**
 * Decodes the record at buf[offset, offset+length). Everything returned is
 * copied out of `buf` (the ring is reused at once), except a big item's
 * zero-copy view of its own segment.
 */
export function decodeFrom(buf: Buffer, offset: number, length: number, view?: DataView): unknown {
  const t = buf[offset];
  if (t === Tag.V8) {
    const der = new FreshDeserializer(buf.subarray(offset + 2, offset + length));
    der.readHeader();
    const v = der.readValue();
    return buf[offset + 1] === 1 ? rebuild(v) : v;
  }
  if (t === Tag.Bytes) return copyToBuffer(buf, offset + 1, length - 1);
  src = fast(buf);
  srcView = view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  rpos = offset;
  if (t === Tag.Blob) {
    rpos++;
    return readBlob();
  }
  const v = readValue();
  if (rpos !== offset + length) throw new Error(`multiproc codec: record of ${length} bytes decoded ${rpos - offset}`);
  return v;
}

/**
 * The raw bytes of a record, for recvBytes: the bytes themselves for what was
 * sent as bytes (sendBytes, or a Buffer / typed array), else the encoded item.
 */
export function recordBytes(buf: Buffer, offset: number, length: number): Buffer {
  const t = buf[offset];
  if (t === Tag.Bytes || t === Tag.Buffer || t === Tag.TypedArray || (t === Tag.Blob && buf[offset + 1] === 0)) {
    const v = decodeFrom(buf, offset, length) as ArrayBufferView;
    return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  // An encoded item. The shared objects it names hold a reference each for
  // their receiver: decoding it here hands those references to objects of
  // this process (or back to this process's own objects), dropped when they
  // are collected; left alone they would stay until the process tree ends.
  let b: Buffer;
  if (t === Tag.Blob) {
    const n = buf.readUInt32LE(offset + 2);
    const seg = Segment.attach(fast(buf).latin1Slice(offset + 6, offset + 6 + n), Kind.Blob, true);
    readBlobs.push({ seg, unmap: true });
    b = Buffer.from(new Uint8Array(seg.buffer, seg.payloadOffset, seg.payloadBytes));
  } else {
    b = Buffer.allocUnsafe(length);
    buf.copy(b, 0, offset, offset + length);
  }
  try {
    decodeFrom(b, 0, b.length);
  } catch {
    // what it could release is released; the bytes are still the caller's
  }
  return b;
}
