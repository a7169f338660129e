/**
 * Start methods and contexts (CPython's context.py): one factory surface per
 * start method. `getContext(m)` returns a context whose `Process` and
 * `Pool` start children with `m`; its other factories are the package's own
 * (shared objects do not depend on how a process was started), and so are
 * its helpers (cpuCount, currentProcess...) and error classes, as on
 * Python's contexts, so that code written against a context finds them.
 *
 * Exports: BaseContext, getContext, getAllStartMethods, getStartMethod,
 * setStartMethod, setForkserverPreload, setForkserverSpares, checkStartMethod, defaultStartMethod.
 *
 * Default: 'forkserver' on Linux and macOS, unless this process runs with
 * ESM loader hooks (`--import`, `--loader`, `--experimental-loader`): those
 * hooks run on a loader thread a forked child does not have, so then the
 * default is 'spawn'. See docs/process.md for why.
 */
import { SharedMemory } from './shared-memory';
import { RawArray, RawValue, SharedArray, Value } from './sharedctypes';
import { activeChildren, cpuCount, currentProcess, parentProcess, Process, type CurrentProcessInfo, type ProcessInfo, type ProcessOptions } from './process';
import { Pool, type PoolOptions } from './pool';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore } from './synchronize';
import { JoinableQueue, Queue, SimpleQueue } from './queues';
import { Pipe } from './connection';
import type { StartMethod } from './popen/popen';
import { setForkserverPreload as setPreload, setForkserverSpares as setSpares, startForkserver as startZygote } from './popen/forkserver';
import { checkOptionNames, describeValue } from './validate';
import { mayForkSelf } from './wait';
import { usesLoaderHooks } from './task';
import {
  AbortError, BrokenBarrierError, BrokenPipeError, ClosedError, EOFError, MultiprocError, ProcessError, QueueClosedError,
  QueueEmptyError, QueueFullError, SerializationError, TimeoutError, WorkerExitError,
} from './errors';

export type { StartMethod };

const kMethods: readonly StartMethod[] = ['spawn', 'forkserver', 'fork'];

export function checkStartMethod(m: unknown): StartMethod {
  if (typeof m !== 'string' || !(kMethods as readonly string[]).includes(m)) {
    throw new TypeError(`Expected a start method, one of 'spawn', 'forkserver', 'fork', got ${describeValue(m)}`);
  }
  if (m === 'fork') mayForkSelf(true);
  return m as StartMethod;
}

/** The start method used when none was set: see the module comment. */
export function defaultStartMethod(): StartMethod {
  if (process.platform === 'win32') return 'spawn';
  return usesLoaderHooks() ? 'spawn' : 'forkserver';
}

export class BaseContext {
  readonly #method: StartMethod | null;
  /** `new ctx.Process({...})` starts with this context's method. */
  readonly Process: typeof Process;
  /** `new ctx.Pool({...})` starts its workers with this context's method. */
  readonly Pool: typeof Pool;

  constructor(method: StartMethod | null) {
    this.#method = method;
    const ctx = this;
    // Anything but an object goes to the base constructor as it is, which
    // says what is wrong with it: spread, it would be {} (ctx.Pool(4) would
    // start cpuCount() workers).
    const isObject = (o: unknown): o is object => typeof o === 'object' && o !== null;
    // Only a bound context fixes the method here: the default one's classes
    // are the package's, which read the default at start(), as Python's
    // get_context() does (they took the default at construction: a
    // setStartMethod() between new and start() was ignored; review helper-102).
    const bound = method;
    this.Process = class<A extends readonly unknown[] = never[]> extends Process<A> {
      constructor(options: ProcessOptions<A>) {
        super(isObject(options) && bound !== null ? { ...options, startMethod: options.startMethod ?? bound } : options);
      }
    };
    this.Pool = class<I extends readonly unknown[] = never[]> extends Pool<I> {
      constructor(options: PoolOptions<I> = {} as PoolOptions<I>) {
        super(isObject(options) && bound !== null ? { ...options, startMethod: options.startMethod ?? bound } : options);
      }
    };
  }

  /** This context's start method (for the default context: the current default). */
  getStartMethod(): StartMethod {
    return this.#method ?? getStartMethod();
  }

  getContext(m?: StartMethod): BaseContext {
    return getContext(m);
  }

  getAllStartMethods(): StartMethod[] {
    return getAllStartMethods();
  }

  /**
   * On the default context (getContext()): the package's setStartMethod. A
   * context bound to a method cannot change it (Python's "cannot set start
   * method of concrete context").
   */
  setStartMethod(method: StartMethod | null, options: { force?: boolean } = {}): void {
    if (this.#method !== null) {
      throw new ProcessError(`This context is bound to '${this.#method}' and cannot change its start method; ` +
        "call setStartMethod() on the package (or on getContext()) to change the default, or use getContext(m) for another method");
    }
    setStartMethod(method, options);
  }

  setForkserverPreload(modules: readonly (string | URL)[]): void {
    setPreload(modules);
  }

  cpuCount(): number {
    return cpuCount();
  }

  currentProcess(): CurrentProcessInfo {
    return currentProcess();
  }

  parentProcess(): ProcessInfo | null {
    return parentProcess();
  }

  activeChildren(): Process[] {
    return activeChildren();
  }

  setForkserverSpares(n: number): void {
    setSpares(n);
  }

  startForkserver(): Promise<void> {
    return startZygote();
  }

  readonly SharedMemory = SharedMemory;
  readonly Value = Value;
  readonly RawValue = RawValue;
  readonly SharedArray = SharedArray;
  readonly RawArray = RawArray;
  readonly Lock = Lock;
  readonly RLock = RLock;
  readonly Semaphore = Semaphore;
  readonly BoundedSemaphore = BoundedSemaphore;
  readonly Condition = Condition;
  readonly Event = Event;
  readonly Barrier = Barrier;
  readonly Queue = Queue;
  readonly JoinableQueue = JoinableQueue;
  readonly SimpleQueue = SimpleQueue;
  readonly Pipe = Pipe;

  // The error classes (Python's ctx.ProcessError, ctx.TimeoutError...).
  readonly MultiprocError = MultiprocError;
  readonly ProcessError = ProcessError;
  readonly TimeoutError = TimeoutError;
  readonly QueueFullError = QueueFullError;
  readonly QueueEmptyError = QueueEmptyError;
  readonly QueueClosedError = QueueClosedError;
  readonly ClosedError = ClosedError;
  readonly BrokenBarrierError = BrokenBarrierError;
  readonly EOFError = EOFError;
  readonly BrokenPipeError = BrokenPipeError;
  readonly SerializationError = SerializationError;
  readonly AbortError = AbortError;
  readonly WorkerExitError = WorkerExitError;
}

let chosen: StartMethod | null = null;
/** In a spawn or forkserver child: the start method its parent had set (see inheritStartMethod). */
let inherited: StartMethod | null = null;
const contexts = new Map<StartMethod, BaseContext>();
let defaultContext: BaseContext | null = null; // lazy: process.ts and this module import each other

export function getStartMethod(): StartMethod {
  return chosen ?? inherited ?? defaultStartMethod();
}

/**
 * @internal In a child: the default start method its parent had set, as
 * Python's children inherit it (before, a setStartMethod('spawn') program's
 * children started theirs with the forkserver; helper-68). Only a default:
 * the child may still set its own without { force: true }.
 */
export function inheritStartMethod(method: StartMethod | null | undefined): void {
  inherited = method ?? null;
}

/**
 * @internal What a spawn or forkserver child inherits: the start method set
 * in this process, or inherited by it. Not 'fork', which such a child
 * cannot use (it is not single-threaded): its processes would all refuse to
 * start (helper-71). A 'fork' child copies this process's choice anyway.
 */
export function startMethodToInherit(): StartMethod | null {
  const m = chosen ?? inherited;
  return m === 'fork' ? null : m;
}

/** Sets the default start method; a second call throws unless { force: true }, as in Python. */
export function setStartMethod(method: StartMethod | null, options: { force?: boolean } = {}): void {
  if (options !== undefined && options !== null) {
    if (typeof options !== 'object') throw new TypeError(`Expected the setStartMethod() options to be an object like { force: true }, got ${describeValue(options)}`);
    checkOptionNames(options, ['force'], 'setStartMethod()');
    if (options.force !== undefined && typeof options.force !== 'boolean') {
      throw new TypeError(`Expected "force" to be a boolean, got ${describeValue(options.force)}`);
    }
  }
  if (chosen !== null && options?.force !== true) {
    throw new ProcessError(`The start method was already set to '${chosen}'; pass { force: true } to change it`);
  }
  chosen = method === null ? null : checkStartMethod(method);
}

/** Every valid start method, the default first ('fork' is listed but refuses to start where unsafe). */
export function getAllStartMethods(): StartMethod[] {
  const d = defaultStartMethod();
  return [d, ...kMethods.filter((m) => m !== d)];
}

/** A context bound to `method` (or the default context, which follows setStartMethod). */
export function getContext(method?: StartMethod | null): BaseContext {
  if (method === undefined || method === null) return (defaultContext ??= new BaseContext(null));
  const m = checkStartMethod(method);
  let c = contexts.get(m);
  if (c === undefined) contexts.set(m, (c = new BaseContext(m)));
  return c;
}

export function setForkserverPreload(modules: readonly (string | URL)[]): void {
  setPreload(modules);
}

/** How many children the forkserver keeps forked ahead of demand (default: CPU count, at most 4; 0 = none). */
export function setForkserverSpares(n: number): void {
  setSpares(n);
}

/**
 * Starts the forkserver now and resolves once it serves requests, so that
 * the first start() or new Pool() does not block the event loop while it
 * boots. Optional: without it, the first use starts it (synchronously).
 */
export function startForkserver(): Promise<void> {
  return startZygote();
}
