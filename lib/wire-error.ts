/**
 * An error thrown in a pool worker, as it travels to the parent and is
 * rebuilt there: of the same built-in class (a TypeError is still
 * `instanceof TypeError`, a subclass comes back as its nearest built-in
 * base under its own name), with its message, stack, `cause` (an Error, or
 * any value structured clone carries) and an AggregateError's `errors`,
 * and the own primitive properties it carried (`code`, ...). This library's
 * own errors (SerializationError, ProcessError...) come back as their class.
 *
 * Items of queues and pipes, and Process args, carry errors the same way
 * (see errorFields; structured clone would drop a `code`, or a subclass's
 * name).
 *
 * Exports: WireError, wire, unwire, isError, errorFields, ErrorRecord, errorRecord, isErrorRecord, errorFromRecord.
 */
import { types } from 'node:util';
import { serialize } from 'node:v8';
import { kToHandle } from './symbols';
import {
  AbortError, BrokenBarrierError, BrokenPipeError, ClosedError, EOFError, MultiprocError, NativeAddonError, ProcessError, QueueClosedError,
  QueueEmptyError, QueueFullError, SerializationError, TimeoutError, WorkerExitError,
} from './errors';

/** Serialized error from a worker. */
export interface WireError {
  name: string;
  message: string;
  /** The class to rebuild it with: the nearest of kBuiltins / kOwn in its prototype chain ('Error' if none). */
  base?: string;
  stack?: string;
  props?: Record<string, unknown>;
  /** Present when the error had an own `cause` that could travel. */
  cause?: WireValue;
  /** An AggregateError's errors. */
  errors?: WireValue[];
}

/** An Error, or a value that structured clone carries. */
type WireValue = { error: WireError } | { value: unknown };

type ErrorClass = new (message: string, options?: { cause?: unknown }) => Error;

const kBuiltins: Record<string, ErrorClass> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};
/** This library's errors whose constructor is (message, options): found by name, so any copy of the library counts. */
const kOwn: Record<string, ErrorClass> = {
  MultiprocError, QueueFullError, QueueEmptyError, QueueClosedError, ClosedError, TimeoutError, BrokenBarrierError,
  EOFError, BrokenPipeError, SerializationError, ProcessError, AbortError, NativeAddonError,
  // Its constructor takes (message, info): its pid, exitCode... come back as
  // props. Missing here, it came back a MultiprocError (a nested pool's, or
  // one put on a queue), not instanceof WorkerExitError (review helper-124).
  WorkerExitError: function (message: string) {
    return new WorkerExitError(message, {});
  } as unknown as ErrorClass,
};
/** Causes nested deeper than this are dropped (a chain may also loop back on itself). */
const kMaxDepth = 16;

function baseOf(err: Error): string {
  const chain: string[] = [];
  for (let p: unknown = Object.getPrototypeOf(err); p !== null && p !== undefined; p = Object.getPrototypeOf(p)) {
    const ctor = Object.prototype.hasOwnProperty.call(p, 'constructor') ? (p as { constructor: unknown }).constructor : undefined;
    chain.push(typeof ctor === 'function' ? ctor.name : '');
  }
  const own = chain.includes('MultiprocError') ? chain.find((n) => Object.prototype.hasOwnProperty.call(kOwn, n)) : undefined;
  return own ?? chain.find((n) => n === 'AggregateError' || n === 'DOMException' || Object.prototype.hasOwnProperty.call(kBuiltins, n)) ?? 'Error';
}

function wireValue(v: unknown, depth: number, seen: Set<object>): WireValue | undefined {
  if (typeof v === 'object' && v !== null && isError(v)) {
    if (depth >= kMaxDepth || seen.has(v)) return undefined;
    return { error: wireError(v, depth + 1, seen) };
  }
  try {
    serialize(v);
  } catch {
    return undefined; // a function, a class instance with private state...: cannot travel
  }
  return { value: v };
}

/** `seen`: the errors on the way here (a cause chain may loop back). */
function wireError(err: Error, depth: number, seen: Set<object>): WireError {
  seen.add(err);
  try {
    return wireFields(err, depth, seen);
  } finally {
    seen.delete(err);
  }
}

function wireFields(err: Error, depth: number, seen: Set<object>): WireError {
  const props: Record<string, unknown> = {};
  for (const k of Object.keys(err)) {
    if (k === 'cause' || k === 'errors') continue; // carried below, rebuilt
    let v: unknown;
    try {
      v = (err as unknown as Record<string, unknown>)[k];
    } catch {
      // A getter that throws: that prop is left out, as errorFields does (the
      // whole error became "cannot be described", its message and stack lost).
      continue;
    }
    // (Pipes carry bigints and undefined exactly: both were dropped before.)
    if (v === null || ['string', 'number', 'boolean', 'bigint', 'undefined'].includes(typeof v)) props[k] = v;
  }
  const base = baseOf(err);
  const out: WireError = { name: err.name, message: err.message, base, stack: err.stack, props };
  if (Object.prototype.hasOwnProperty.call(err, 'cause')) {
    const cause = wireValue((err as { cause?: unknown }).cause, depth, seen);
    if (cause !== undefined) out.cause = cause;
  }
  const errors = base === 'AggregateError' ? (err as AggregateError).errors : undefined;
  if (Array.isArray(errors)) {
    out.errors = errors.map((e) => wireValue(e, depth, seen) ?? { value: String(e) });
  }
  return out;
}

/**
 * In the worker: what of `err` travels. Never throws: a task may throw
 * anything, a null-prototype object, a Proxy whose traps throw, an Error
 * whose message getter throws, and describing it must not kill the worker
 * (it did: the call failed with WorkerExitError instead of its error).
 */
export function wire(err: unknown): WireError {
  try {
    return wireUnsafe(err);
  } catch {
    return { name: 'Error', message: `A value was thrown that cannot be described (${safeTag(err)})` };
  }
}

function safeTag(v: unknown): string {
  try {
    return Object.prototype.toString.call(v);
  } catch {
    return typeof v;
  }
}

function wireUnsafe(err: unknown): WireError {
  // An error of another realm (a task that runs code with node:vm) is an
  // error too, as queue items take it (errorFields): it came back "A
  // non-Error value was thrown" (review helper-124).
  if (typeof err !== 'object' || err === null || !isError(err)) {
    const out: WireError = { name: 'Error', message: `A non-Error value was thrown: ${String(err)}` };
    const value = wireValue(err, 0, new Set());
    if (value !== undefined) out.cause = value;
    return out;
  }
  return wireError(err, 0, new Set());
}

function unwireValue(v: WireValue): unknown {
  return 'error' in v ? unwire(v.error) : v.value;
}

/** In the parent: the error rebuilt. */
export function unwire(e: WireError): Error {
  const err = makeError(e.name, e.message, e.base ?? e.name, e.stack);
  completeError(err, e.props ?? {}, e.cause !== undefined, e.cause === undefined ? undefined : unwireValue(e.cause), e.errors?.map(unwireValue));
  return err;
}

/** An Error of this realm, or of another (vm), or a subclass of either. */
export function isError(v: object): v is Error {
  return v instanceof Error || types.isNativeError(v);
}

/**
 * What of an error travels inside an item: its name, message, stack, the
 * class to rebuild it with, its own enumerable properties (any value the
 * item's other values may be), an own `cause` and an AggregateError's errors.
 */
export interface ErrorFields {
  name: string;
  message: string;
  base: string;
  stack: string | undefined;
  props: Record<string, unknown>;
  hasCause: boolean;
  cause: unknown;
  errors: unknown[] | undefined;
}

export function errorFields(err: Error): ErrorFields {
  const base = baseOf(err);
  const aggregate = base === 'AggregateError';
  const props: Record<string, unknown> = {};
  for (const k of Object.keys(err)) {
    // Carried apart and rebuilt: cause, and an AggregateError's errors (another error's own `errors` is a prop).
    if (k === 'cause' || (aggregate && k === 'errors') || k === '__proto__') continue;
    let v: unknown;
    try {
      v = (err as unknown as Record<string, unknown>)[k];
    } catch {
      continue; // a getter that throws: structured clone never read it either
    }
    // What cannot travel (a function, an HTTP client's request object) is
    // left out, as structured clone left every own property out: before,
    // such an error was sent without its props; it must not now fail.
    if (canTravel(v)) props[k] = v;
  }
  const hasCause = Object.prototype.hasOwnProperty.call(err, 'cause');
  const list = aggregate ? (err as { errors?: unknown }).errors : undefined;
  const errors = Array.isArray(list) ? [...(list as unknown[])] : undefined;
  return { name: String(err.name), message: String(err.message), base, stack: typeof err.stack === 'string' ? err.stack : undefined, props, hasCause, cause: hasCause ? (err as { cause?: unknown }).cause : undefined, errors };
}

/**
 * Whether an item may carry `v`, by the codec's rules (shared objects go as
 * handles, bytes as bytes, errors by errorFields), looking for what
 * structured clone refuses: a function, a symbol, a WeakMap, a Promise...
 * (v8.serialize as the test refused a SharedArray, which travels, and cost a
 * whole extra serialization: review helper-69.) Past `budget` objects it
 * says yes: a real failure then fails the put, as before.
 */
function canTravel(v: unknown, seen = new Set<object>(), budget = { left: 10_000 }): boolean {
  if (typeof v === 'function' || typeof v === 'symbol') return false;
  if (typeof v !== 'object' || v === null) return true;
  if (seen.has(v) || --budget.left < 0) return true;
  seen.add(v);
  if (typeof (v as { [kToHandle]?: unknown })[kToHandle] === 'function') return true; // a shared object
  if (ArrayBuffer.isView(v)) return !(v.buffer instanceof SharedArrayBuffer);
  if (v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp || isError(v)) return true;
  if (v instanceof SharedArrayBuffer || v instanceof WeakMap || v instanceof WeakSet || v instanceof Promise) return false;
  const inner = (x: unknown): boolean => canTravel(x, seen, budget);
  try {
    if (v instanceof Map) {
      for (const [k, x] of v) if (!inner(k) || !inner(x)) return false;
      return true;
    }
    if (v instanceof Set) {
      for (const x of v) if (!inner(x)) return false;
      return true;
    }
    return Object.values(v).every(inner);
  } catch {
    return false; // a getter (or Proxy trap) that throws
  }
}

/**
 * An error as an item carries it, a plain object whose values travel as the
 * item's others do: the codec's Tag.Error value and reduce()'s mark.
 */
export interface ErrorRecord {
  n: string;
  m: string;
  b: string;
  s: string | undefined;
  p: Record<string, unknown>;
  /** Present if the error had an own cause (which may be undefined). */
  c?: unknown;
  e?: unknown[];
}

export function errorRecord(err: Error): ErrorRecord {
  const f = errorFields(err);
  const r: ErrorRecord = { n: f.name, m: f.message, b: f.base, s: f.stack, p: f.props };
  if (f.hasCause) r.c = f.cause;
  if (f.errors !== undefined) r.e = f.errors;
  return r;
}

/** Whether a decoded value is a well-formed ErrorRecord (the other side is trusted no further). */
export function isErrorRecord(w: unknown): w is ErrorRecord {
  if (typeof w !== 'object' || w === null) return false;
  const r = w as Record<string, unknown>;
  return typeof r.n === 'string' && typeof r.m === 'string' && typeof r.b === 'string' && (r.s === undefined || typeof r.s === 'string') &&
    typeof r.p === 'object' && r.p !== null && (r.e === undefined || Array.isArray(r.e));
}

/** The error of a record whose values are already rebuilt (`fill` rebuilds them after the error exists, for cycles). */
export function errorFromRecord(r: ErrorRecord, fill: (v: unknown) => unknown = (v) => v, made?: (err: Error) => void): Error {
  const err = makeError(r.n, r.m, r.b, r.s);
  made?.(err);
  const hasCause = Object.prototype.hasOwnProperty.call(r, 'c');
  completeError(err, fill(r.p) as Record<string, unknown>, hasCause, hasCause ? fill(r.c) : undefined, r.e === undefined ? undefined : (fill(r.e) as unknown[]));
  return err;
}

/** The error without its cause, errors and props (see completeError: a cause may be the error itself). */
export function makeError(name: string, message: string, base: string, stack: string | undefined): Error {
  let err: Error;
  if (base === 'AggregateError') err = new AggregateError([], message);
  else if (base === 'DOMException' && typeof DOMException === 'function') err = new DOMException(message, name); // its code follows from the name
  else {
    const Ctor = Object.prototype.hasOwnProperty.call(kBuiltins, base) ? kBuiltins[base]! : Object.prototype.hasOwnProperty.call(kOwn, base) ? kOwn[base]! : Error;
    err = new Ctor(message);
  }
  if (err.name !== name) Object.defineProperty(err, 'name', { value: name, enumerable: false, configurable: true, writable: true });
  if (stack !== undefined) err.stack = stack;
  else delete err.stack; // not this function's
  return err;
}

/** Sets what makeError() left out, as the constructors would (cause and errors own, not enumerable). */
export function completeError(err: Error, props: Record<string, unknown>, hasCause: boolean, cause: unknown, errors: unknown[] | undefined): void {
  if (hasCause) Object.defineProperty(err, 'cause', { value: cause, enumerable: false, configurable: true, writable: true });
  if (errors !== undefined && err instanceof AggregateError) Object.defineProperty(err, 'errors', { value: errors, enumerable: false, configurable: true, writable: true });
  for (const k of Object.keys(props)) {
    // An own one (name, message, stack set again) keeps its attributes; the
    // others are defined (a prop named like an accessor of Error.prototype stays data).
    if (Object.prototype.hasOwnProperty.call(err, k)) (err as unknown as Record<string, unknown>)[k] = props[k];
    else Object.defineProperty(err, k, { value: props[k], enumerable: true, configurable: true, writable: true });
  }
}
