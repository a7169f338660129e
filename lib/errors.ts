/**
 * Every error class the library throws on purpose. Each sets `name` to its
 * class name (so `err.name === 'QueueFullError'` works across realms and
 * after crossing a process) and accepts `{ cause }`.
 *
 * Bad arguments are plain `TypeError` / `RangeError`, as in Node's own APIs.
 */

export class MultiprocError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    Object.defineProperty(this, 'name', { value: new.target.name, enumerable: false, configurable: true, writable: true });
  }
}

/**
 * A lock used out of turn: released by a thread that does not hold it, a
 * Condition waited on or notified without its lock (code
 * ERR_MULTIPROC_NOT_HELD), a BoundedSemaphore released past its value
 * (ERR_MULTIPROC_RELEASED_TOO_MANY), an acquireSync() without a timeout of
 * a Lock this thread holds (ERR_MULTIPROC_DEADLOCK). Python raises ValueError,
 * AssertionError or RuntimeError for these; here they are the library's
 * own errors (they were plain Errors: helper-72), told apart by `code`.
 */
export function misuseError(message: string, code: 'ERR_MULTIPROC_NOT_HELD' | 'ERR_MULTIPROC_RELEASED_TOO_MANY' | 'ERR_MULTIPROC_DEADLOCK'): MultiprocError {
  return Object.assign(new MultiprocError(message), { code });
}

/** A non-blocking put on a full queue. */
export class QueueFullError extends MultiprocError {}
/** A non-blocking get on an empty queue. */
export class QueueEmptyError extends MultiprocError {}
/**
 * An object used after close() (or dispose) in this process: a Value, a
 * SharedArray, SharedMemory, a lock, an Event, a Barrier... Attach it again
 * (a handle, a name) to use it.
 */
export class ClosedError extends MultiprocError {}
/** put/get on a queue that was closed (by any process). */
export class QueueClosedError extends ClosedError {}
/** A wait whose timeout passed, where the method does not return a boolean. */
export class TimeoutError extends MultiprocError {}
/** A Barrier that was aborted, reset while waited on, or timed out. */
export class BrokenBarrierError extends MultiprocError {}
/** A Pipe/Connection whose other end is closed or whose peer died. */
export class EOFError extends MultiprocError {}
/** A value that cannot be encoded for another process, or bytes that cannot be decoded. */
export class SerializationError extends MultiprocError {}
/** Wrong use of a Process (start twice, join before start, ...), or a failure to start one. */
export class ProcessError extends MultiprocError {}
/** Work was cancelled because the pool (or process) is shutting down, e.g. on SIGINT. */
export class AbortError extends MultiprocError {}
/**
 * The native addon could not be loaded (never built, built for another
 * platform, or the package was bundled away from it): thrown by
 * `require('multiproc')` / `import 'multiproc'`, with what to do in its
 * message and the loader's own error as `cause`.
 */
export class NativeAddonError extends MultiprocError {}

/** A pool worker died while running a task. */
export class WorkerExitError extends MultiprocError {
  readonly pid: number | undefined;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Index in the call's input of the first item the worker was running (it ran `count` items as one chunk). */
  readonly index: number | null;
  readonly count: number | null;
  /** The worker's resident memory when it last reported it (at most ~20 ms before its last result), or null. */
  readonly rssBytes: number | null;
  constructor(
    message: string,
    info: { pid?: number; exitCode?: number | null; signal?: NodeJS.Signals | null; index?: number; count?: number; rssBytes?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.pid = info.pid;
    this.exitCode = info.exitCode ?? null;
    this.signal = info.signal ?? null;
    this.index = info.index ?? null;
    this.count = info.count ?? null;
    this.rssBytes = info.rssBytes ?? null;
  }
}

/** Maps a native errno error to the clearest JS error for a shared memory call. */
export function shmError(err: unknown, name: string, action: string): Error {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return Object.assign(new Error(`No shared memory segment named '${name}' exists (${action}): it was never made, or was unlinked already`), { code: e.code, cause: err });
    case 'EEXIST':
      return Object.assign(new Error(`A shared memory segment named '${name}' already exists; pick another name or attach to it`), { code: e.code, cause: err });
    case 'ENAMETOOLONG':
      return Object.assign(new RangeError(`Shared memory name '${name}' is too long for this OS (macOS allows 30 characters)`), { code: e.code, cause: err });
    case 'ENOMEM':
      if (e.syscall === 'mmap') {
        // Not /dev/shm: the process's mappings. Each Value, array or lock is a segment of its own (two
        // with its lock), and Linux allows a process vm.max_map_count of them (65530 by default).
        return Object.assign(new RangeError(
          `Cannot map shared memory segment '${name}' (${action}): this process is out of memory mappings or address space, not /dev/shm space. ` +
            'Each Value, SharedArray, lock and queue is a mapping of its own (a Value with its lock, two); close() the ones no longer used, ' +
            'keep many numbers in one SharedArray or RawArray instead of one Value each, or raise the limit (Linux: sysctl vm.max_map_count)',
        ), { code: e.code, cause: err });
      }
      return Object.assign(new RangeError(`Not enough shared memory to ${action} '${name}' (is /dev/shm full or too small?)`), { code: e.code, cause: err });
    case 'ENOSPC':
      return Object.assign(new RangeError(`Not enough shared memory to ${action} '${name}' (is /dev/shm full or too small?)`), { code: e.code, cause: err });
    case 'EACCES':
      return Object.assign(new Error(`Permission denied to ${action} shared memory segment '${name}'`), { code: e.code, cause: err });
    case 'EINVAL':
      return Object.assign(new Error(`Shared memory segment '${name}' cannot be mapped (is it empty?)`), { code: e.code, cause: err });
    default:
      return err instanceof Error ? err : new Error(String(err));
  }
}

/** A send on a Pipe whose reading end is closed (or whose reader died). */
export class BrokenPipeError extends EOFError {}

/**
 * For classes whose objects only factories make (they need a mapping, a pipe
 * core...): `new` from user code would otherwise build a husk that fails
 * later with an unrelated message.
 */
export function noPublicConstructor(cls: string, use: string): TypeError {
  return new TypeError(`${cls} has no public constructor: ${use}`);
}
