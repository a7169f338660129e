/** Argument checks with messages that say what was expected and what came. */

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'a function';
  if (v === null) return 'null';
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return String(v);
}

export function checkInteger(name: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`Expected "${name}" to be an integer, got ${show(v)}`);
  }
  if (v < min || v > max) {
    throw new RangeError(`Expected "${name}" to be between ${min} and ${max}, got ${v}`);
  }
  return v;
}

/**
 * The longest delay setTimeout takes (~24.8 days). Node fires a longer one
 * after 1 ms (with a warning), so longer timeouts mean "no limit" here.
 */
export const kMaxTimerMs = 0x7fffffff;

/**
 * Timeouts are milliseconds: undefined/null/Infinity, and anything above
 * kMaxTimerMs, mean "wait forever"; anything else must be a number >= 0.
 * Returns the deadline (performance.now() based) or Infinity.
 */
export function deadlineFrom(name: string, timeout: unknown): number {
  if (timeout === undefined || timeout === null) return Infinity;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
    throw new TypeError(`Expected "${name}" to be a number of milliseconds >= 0 (or undefined for no timeout), got ${show(timeout)}`);
  }
  return timeout > kMaxTimerMs ? Infinity : performance.now() + timeout;
}

/** Milliseconds left until deadline (Infinity stays Infinity, never negative). */
export function remaining(deadline: number): number {
  if (deadline === Infinity) return Infinity;
  return Math.max(0, deadline - performance.now());
}

export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal === null) return undefined;
  if (typeof signal !== 'object' || typeof (signal as AbortSignal).aborted !== 'boolean') {
    throw new TypeError(`Expected "signal" to be an AbortSignal, got ${show(signal)}`);
  }
  return signal as AbortSignal;
}

/** Edit distance counting a swap of two neighbours as one edit ("froce" is one from "force"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The allowed name `key` most likely misspells: same letters but for case, else at most two edits away (one for short names). */
function closestName(key: string, allowed: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of allowed) {
    const candidate = name.toLowerCase();
    if (candidate === lower) return name;
    const d = editDistance(lower, candidate);
    if (d <= (Math.min(key.length, name.length) <= 3 ? 1 : 2) && d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/** What the waits' options objects take: { timeout, signal } (acquire, Event/Condition wait, the queues' put/get/join). */
const kWaitOptionNames: readonly string[] = ['timeout', 'signal'];

/** A wait's deadline (performance.now() based, or Infinity) and signal. */
export interface ParsedWait {
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
}

/** A wait without options (the hot calls test for it first, before building a message's name). */
export const kForever: ParsedWait = Object.freeze({ deadline: Infinity, signal: undefined });

/**
 * Every wait (acquire, Event/Condition wait, the queues' put/get/join, recv)
 * takes a number of milliseconds or { timeout?, signal? }: porters write
 * `lock.acquire(100)` as they write `event.wait(100)` and `p.join(100)`, and
 * one rule for all is easier to remember than which call takes which.
 * `what` names the call for messages ("Queue.get()").
 */
export function parseWait(options: unknown, what: string): ParsedWait {
  if (options === undefined || options === null) return kForever;
  if (typeof options === 'number') return { deadline: deadlineFrom('timeout', options), signal: undefined };
  if (typeof options !== 'object') {
    throw new TypeError(`${what} takes a timeout in milliseconds or { timeout?, signal? }, got ${show(options)}`);
  }
  checkOptionNames(options, kWaitOptionNames, what);
  const o = options as { timeout?: unknown; signal?: unknown };
  return { deadline: deadlineFrom('timeout', o.timeout), signal: checkSignal(o.signal) };
}

/**
 * Throws a TypeError for an own key of `options` that `allowed` does not
 * list, as Python does for an unexpected keyword argument: ignored, a
 * misspelled option turns `{ timout: 100 }` into a wait without limit.
 * `what` names the call for the message ("Queue.get()"). Call it on the
 * object the user passed, before anything adds keys of its own.
 */
export function checkOptionNames(options: object, allowed: readonly string[], what: string): void {
  for (const key in options) {
    if (allowed.includes(key) || !Object.hasOwn(options, key)) continue;
    const near = closestName(key, allowed);
    const hint = near !== undefined
      ? ` (did you mean "${near}"?)`
      : allowed.length === 0 ? '; it takes no options' : `; the options are ${allowed.map((n) => `"${n}"`).join(', ')}`;
    throw new TypeError(`Unknown option "${key}" for ${what}${hint}`);
  }
}

export { show as describeValue };
