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

export { show as describeValue };
