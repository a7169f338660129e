/**
 * AsyncResult: what Python's Pool.apply_async/map_async/starmap_async
 * return, for code ported from them. Pool.apply()/map() already return
 * promises, which is what a Node user awaits; this adds what a promise does
 * not give: ready()/successful() to look without waiting, get(timeoutMs)
 * that gives up waiting without cancelling the task, and the callbacks.
 *
 * Exports: AsyncResult, AsyncCallbacks; asyncResult and takeCallbacks for
 * pool.ts (not re-exported by the package).
 */
import { MultiprocError, noPublicConstructor, TimeoutError } from './errors';
import { deadlineFrom, describeValue } from './validate';

export interface AsyncCallbacks<R> {
  /** Called with the result when the call succeeds (Python's `callback`). */
  callback?: ((result: R) => void) | undefined;
  /** Called with the error when it fails (Python's `error_callback`). */
  errorCallback?: ((error: Error) => void) | undefined;
}

const kCallbackNames = ['callback', 'errorCallback'] as const;
const kNew: unique symbol = Symbol('multiproc.AsyncResult.new');

/**
 * Splits `options` into the call's own options and the callbacks; checks
 * that a callback given is a function (before: nothing, it ran later and
 * threw where nobody looked).
 */
export function takeCallbacks<O extends object, R>(options: (O & AsyncCallbacks<R>) | undefined, what: string): { rest: O; callbacks: AsyncCallbacks<R> } {
  if (options === undefined || options === null || typeof options !== 'object') return { rest: options as unknown as O, callbacks: {} };
  const rest = { ...options } as Record<string, unknown>;
  const callbacks: AsyncCallbacks<R> = {};
  for (const name of kCallbackNames) {
    const fn = rest[name];
    delete rest[name];
    if (fn === undefined) continue;
    if (typeof fn !== 'function') throw new TypeError(`Expected "${name}" of ${what} to be a function, got ${describeValue(fn)}`);
    callbacks[name] = fn as never;
  }
  return { rest: rest as O, callbacks };
}

/**
 * A callback that throws is the caller's bug: it surfaces as an uncaught
 * exception, as a throwing event listener does, not as this call's error
 * (an errorCallback that rethrew the call's own error was swallowed: review
 * helper-75).
 */
function runCallback<T>(cb: ((v: T) => void) | undefined, v: T): void {
  if (cb === undefined) return;
  try {
    cb(v);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

export class AsyncResult<R> {
  #state: 'pending' | 'ok' | 'error' = 'pending';
  #value: R | undefined;
  #error: Error | undefined;
  /**
   * wait()s still waiting: woken when the call ends. A race against the
   * call's promise per wait(ms) or get(ms) added a reaction each, kept until
   * the call ended (~750 bytes a call in a polling loop; review helper-82,
   * as join() had).
   */
  readonly #waiters = new Set<() => void>();

  private constructor(token: typeof kNew, promise: Promise<R>, callbacks: AsyncCallbacks<R>) {
    if (token !== kNew) throw noPublicConstructor('AsyncResult', 'pool.applyAsync(), mapAsync() and starmapAsync() return one');
    const { callback, errorCallback } = callbacks;
    const settle = (): void => {
      for (const w of this.#waiters) w();
      this.#waiters.clear();
    };
    // A failure nobody asks for is kept, not an unhandled rejection (as in
    // Python, where it waits in the AsyncResult until get()).
    promise.then(
      (value) => {
        this.#state = 'ok';
        this.#value = value;
        settle();
        runCallback(callback, value);
      },
      (err: unknown) => {
        this.#state = 'error';
        this.#error = err as Error;
        settle();
        runCallback(errorCallback, err as Error);
      },
    );
  }

  /** @internal pool.ts's factory (asyncResult below); the constructor is private. */
  static [kNew]<R>(promise: Promise<R>, callbacks: AsyncCallbacks<R>): AsyncResult<R> {
    return new AsyncResult(kNew, promise, callbacks);
  }

  /** Whether the call has finished (succeeded or failed). */
  ready(): boolean {
    return this.#state !== 'pending';
  }

  /** Whether it finished without an error; throws if it has not finished yet (Python's ValueError). */
  successful(): boolean {
    if (this.#state === 'pending') throw new MultiprocError('AsyncResult.successful(): the call has not finished yet; check ready() first or await wait()');
    return this.#state === 'ok';
  }

  /**
   * The result, or the call's error; a TimeoutError if it is not ready
   * within `timeoutMs` (the task goes on, and a later get() may still
   * return it, as in Python).
   */
  async get(timeoutMs?: number): Promise<R> {
    await this.wait(timeoutMs);
    if (this.#state === 'pending') throw new TimeoutError(`AsyncResult.get(): not ready within ${timeoutMs} ms (the task goes on)`);
    if (this.#state === 'error') throw this.#error;
    return this.#value as R;
  }

  /** Resolves once the call has finished or `timeoutMs` has passed (check ready()); never rejects with the call's error. */
  async wait(timeoutMs?: number): Promise<void> {
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    if (this.#state !== 'pending') return;
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      if (deadline !== Infinity) timer = setTimeout(done, Math.max(0, deadline - performance.now()));
    });
  }

  toString(): string {
    return `<AsyncResult ${this.#state === 'pending' ? 'pending' : this.#state === 'ok' ? 'ready' : 'failed'}>`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** What pool.ts returns from applyAsync/mapAsync/starmapAsync. */
export function asyncResult<R>(promise: Promise<R>, callbacks: AsyncCallbacks<R>): AsyncResult<R> {
  return AsyncResult[kNew](promise, callbacks);
}
