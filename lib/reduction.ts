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
 * results or queue items.
 */
import { kHandleTag, kToHandle } from './symbols';

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
export function registerKind(kind: string, fromHandle: Rebuilder): void {
  rebuilders.set(kind, fromHandle);
}

export function isShareable(v: unknown): v is Shareable {
  return typeof v === 'object' && v !== null && typeof (v as Partial<Shareable>)[kToHandle] === 'function';
}

export function isHandle(v: unknown): v is Handle {
  return typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)[kHandleTag] === 'string';
}

/** Turns a shared object into a handle (taking a reference for the trip). */
export function toHandle(obj: Shareable): Handle {
  return obj[kToHandle]();
}

/** Attaches to the object a handle names (adopting the handle's reference). */
export function fromHandle(h: Handle): unknown {
  const rebuild = rebuilders.get(h[kHandleTag]);
  if (rebuild === undefined) {
    throw new TypeError(`Unknown multiproc handle kind '${h[kHandleTag]}' (is the receiving side running the same multiproc version?)`);
  }
  return rebuild(h);
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Returns `value` with every shared object replaced by its handle. Containers
 * are copied only when something inside them changed; `found` reports whether
 * anything was replaced (so callers can skip rebuild() on the other side).
 */
export function reduce(value: unknown, seen = new Map<object, unknown>()): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isShareable(value)) return toHandle(value);
  if (seen.has(value)) return seen.get(value);
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    seen.set(value, value);
    for (let i = 0; i < value.length; i++) {
      const r = reduce(value[i], seen);
      if (r !== value[i]) {
        out ??= value.slice();
        out[i] = r;
      }
    }
    if (out) seen.set(value, out);
    return out ?? value;
  }
  if (value instanceof Map) {
    let changed = false;
    const entries: [unknown, unknown][] = [];
    seen.set(value, value);
    for (const [k, v] of value) {
      const rk = reduce(k, seen);
      const rv = reduce(v, seen);
      changed ||= rk !== k || rv !== v;
      entries.push([rk, rv]);
    }
    return changed ? new Map(entries) : value;
  }
  if (value instanceof Set) {
    let changed = false;
    const items: unknown[] = [];
    seen.set(value, value);
    for (const v of value) {
      const rv = reduce(v, seen);
      changed ||= rv !== v;
      items.push(rv);
    }
    return changed ? new Set(items) : value;
  }
  if (isPlainObject(value)) {
    let out: Record<string, unknown> | undefined;
    seen.set(value, value);
    for (const key of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[key];
      const r = reduce(v, seen);
      if (r !== v) {
        out ??= { ...(value as Record<string, unknown>) };
        out[key] = r;
      }
    }
    if (out) seen.set(value, out);
    return out ?? value;
  }
  return value;
}

/** The inverse of reduce(): handles become attached objects again (in place). */
export function rebuild(value: unknown, seen = new Set<object>()): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isHandle(value)) return fromHandle(value);
  if (seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (i in value) value[i] = rebuild(value[i], seen); // a hole stays a hole
    }
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

