/**
 * Process: a real OS process running a target, started by one of the three
 * start methods (lib/popen/*). CPython's process.py.
 *
 * Exports: Process, ProcessOptions (ProcessBaseOptions, ArgsOption), ProcessTarget, ModuleTarget, ProcessInfo, ArgsFor,
 * currentProcess, parentProcess, activeChildren, cpuCount.
 *
 * Lifetime rules (as in Python, said for Node): a non-daemon child keeps the
 * parent's event loop alive until it exits, and if the parent ends through
 * process.exit() its non-daemon children are joined first (blocking), daemon
 * children are terminated (SIGTERM, then SIGKILL after 1 s). Whatever the
 * parent dies of, even SIGKILL, its children die with it (see bootstrap.ts).
 */
import { statSync } from 'node:fs';
import { availableParallelism, constants as osConstants } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { isMainThread } from 'node:worker_threads';
import { ClosedError, EOFError, ProcessError } from './errors';
import { native } from './native';
import type { ChildSpec, ChildTarget, Popen, StartMethod } from './popen/popen';
import { forEachShared, reduce, reduceForFork, releaseHandles, type Handle } from './reduction';
import { cancelPending, duplicateForFork, forkDone, releasingUnsent, reservePending } from './segment';
import { kKillAtExit, kLostWithServer, kNotSendable, kOnExit, kSentTo, kStartAsync } from './symbols';
import { checkForkedImport, describeTask, refuseWhileImportingTarget } from './task';
import { checkOptionNames, deadlineFrom, describeValue } from './validate';
import { forkGeneration, kInheritedCall } from './wait';
import * as context from './context';

export type { StartMethod };

/** A module export to run: `{ module: import.meta.url, export: 'work' }`. */
export interface ModuleTarget {
  /** Absolute path, file URL, package name, or a path relative to the file that creates the Process. */
  module: string | URL;
  /** Export name; defaults to 'default'. */
  export?: string;
}

/** A function (any parameters: `never[]` accepts them all without `any`) or a module export. */
export type ProcessTarget = ((...args: never[]) => unknown) | ModuleTarget;

/**
 * The args a target whose parameters are A takes: A (read-only is fine). A
 * target typed only as "some function" (`(...args: never[]) => unknown`, as
 * ProcessTarget) says nothing about them: any args then. (Accepting an
 * array of A's element types too, for args built at run time, let a wrong
 * order or a missing argument compile: such args need a tuple type.)
 */
export type ArgsFor<A extends readonly unknown[]> = number extends A['length'] ? ([A] extends [readonly never[]] ? readonly unknown[] : Readonly<A>) : Readonly<A>;

/**
 * `args` for a target whose parameters are A: required when the target
 * needs any (before, `{ target: (n: number) => ... }` without args compiled
 * and the child failed on `undefined`; helper-73), optional when it needs
 * none or is a module target (unchecked).
 */
export type ArgsOption<A extends readonly unknown[]> = [] extends A
  ? { args?: NoInfer<ArgsFor<A>> | undefined }
  : { args: NoInfer<ArgsFor<A>> };

/**
 * `A`, the target's parameters, is inferred from `target` alone (`args` is
 * checked against it, NoInfer): `{ target: (n: number) => ..., args: ['x'] }`
 * does not compile. A module target leaves args unchecked.
 */
export type ProcessOptions<A extends readonly unknown[] = never[]> = ProcessBaseOptions<A> & ArgsOption<A>;

export interface ProcessBaseOptions<A extends readonly unknown[] = never[]> {
  target: ((...args: A) => unknown) | ModuleTarget;
  name?: string | undefined;
  daemon?: boolean | undefined;
  startMethod?: StartMethod | undefined;
  /**
   * The child's whole environment, as child_process's `env` (copied when the
   * Process is made; an undefined value leaves that variable out). Without
   * it a `spawn` child gets this process's `process.env` at start(), a
   * `fork` child its copy of it, and a `forkserver` child the environment
   * the zygote started with (this process's when it first used the
   * forkserver): pass `env: process.env` to send the current one.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** The child's working directory (resolved against this process's when the Process is made); default: this process's at start(). */
  cwd?: string | undefined;
}

/** Child environment and directory options (Process, and Pool for its workers). */
export interface ChildPlace {
  env?: Record<string, string>;
  cwd?: string;
}

/** Validates and copies the `env` / `cwd` options of a Process or Pool. */
export function checkChildPlace(env: unknown, cwd: unknown): ChildPlace {
  const place: ChildPlace = {};
  if (env !== undefined) {
    if (typeof env !== 'object' || env === null || Array.isArray(env)) {
      throw new TypeError(`Expected "env" to be an object of strings (such as { ...process.env, NAME: 'value' }), got ${describeValue(env)}`);
    }
    if (env instanceof Map) throw new TypeError('Expected "env" to be an object of strings, got a Map: pass Object.fromEntries(map)');
    const copy: Record<string, string> = {};
    // for-in, as child_process reads env: inherited keys count (Object.create(process.env) works).
    for (const k in env) {
      const v = (env as Record<string, unknown>)[k];
      if (v === undefined) continue;
      if (typeof v !== 'string') throw new TypeError(`Expected env.${k} to be a string, got ${describeValue(v)} (convert it with String())`);
      if (k === '' || k.includes('=') || k.includes('\0') || v.includes('\0')) {
        throw new TypeError(`env has a name or value the OS cannot hold: ${JSON.stringify(k)} (names must be non-empty, without '=' or NUL; values without NUL)`);
      }
      copy[k] = v;
    }
    place.env = copy;
  }
  if (cwd !== undefined) {
    if (typeof cwd !== 'string' || cwd === '') throw new TypeError(`Expected "cwd" to be a directory path, got ${describeValue(cwd)}`);
    place.cwd = resolvePath(cwd);
  }
  return place;
}

/** Before a child is started in `cwd`: a clear error instead of a child that fails (spawn) or a chdir that throws in it. */
function checkCwd(cwd: string, name: string): void {
  let dir = false;
  try {
    dir = statSync(cwd).isDirectory();
  } catch {
    // missing or unreadable: said below
  }
  if (!dir) throw new ProcessError(`Cannot start ${name}: its cwd ${JSON.stringify(cwd)} is not a directory`);
}

/** What currentProcess() / parentProcess() describe. */
export interface ProcessInfo {
  readonly name: string;
  readonly pid: number;
  readonly daemon: boolean;
  /** How this process was started (null for the main process). */
  readonly startMethod: StartMethod | null;
  isAlive(): boolean;
}

/** currentProcess(): as ProcessInfo, and its name may be set (Python's current_process().name = ...). */
export interface CurrentProcessInfo extends ProcessInfo {
  name: string;
}

interface Identity {
  name: string;
  daemon: boolean;
  startMethod: StartMethod | null;
  parentPid: number;
  parentName: string;
  /**
   * Python's `_identity`: the main process is [], its children [1], [2]...,
   * their children [1, 1], [1, 2]... Default names are made from it
   * (`Process-1:2`), so they are distinct across the whole tree.
   */
  chain: readonly number[];
}

/**
 * A worker thread is its process: a child's threads take the identity its
 * main thread stored in the addon as it started (before, a child's worker
 * thread was 'MainProcess', and its first Process was named as a sibling
 * of the child; review helper-103).
 */
function inheritedIdentity(): Identity | null {
  return isMainThread ? null : storedIdentity();
}

function storedIdentity(): Identity | null {
  const json = native.processIdentity();
  return typeof json === 'string' ? (JSON.parse(json) as Identity) : null;
}

/**
 * This process's process.stdin once it was made, seen through its getter,
 * wrapped when the library loads: a 'fork' child lets it go without making
 * one (bootstrap.ts detachInheritedHandles; making it cost every child ~1.5
 * ms, review helper-105). One made before the library loaded is seen there
 * only if it reads (an active handle on fd 0).
 */
let madeStdin: unknown = null;
{
  const desc = Object.getOwnPropertyDescriptor(process, 'stdin');
  const get = desc?.get;
  if (get !== undefined && desc!.configurable === true) {
    Object.defineProperty(process, 'stdin', {
      configurable: true,
      enumerable: desc!.enumerable ?? true,
      get(): unknown {
        const stdin: unknown = get.call(process);
        madeStdin = stdin;
        return stdin;
      },
    });
  }
}

/** @internal See madeStdin. */
export function stdinMade(): unknown {
  return madeStdin;
}

/** This process's name, read from the addon, where a rename in any thread puts it (a worker's was not the main thread's; review helper-105). */
function processName(): string {
  identity.name = storedIdentity()?.name ?? identity.name;
  return identity.name;
}

let identity: Identity = inheritedIdentity() ?? { name: 'MainProcess', daemon: false, startMethod: null, parentPid: 0, parentName: '', chain: [] };
/**
 * The next number of a Process (each takes one, named or not, as Python's)
 * or a Pool this process makes: counted in the addon, which every thread of
 * the process shares (each worker thread had its own count, and two threads'
 * first children were both Process-1; review helper-102). A fork()ed child
 * starts from 0 (the addon empties its counts in a child).
 */
function nextNumber(of: 'Process' | 'Pool'): number {
  return native.processCount(`next-${of}`, 1);
}
/**
 * The chain of the Process being started with 'fork', for the fork child's
 * enterChild: it runs on the parent's copy of this module, inside start().
 */
let forkingChain: readonly number[] | null = null;
const children = new Set<Process>();
let exitHookInstalled = false;

/** Called by the child bootstrap: this process is now a child. */
export function enterChild(info: Omit<Identity, 'chain'> & { chain?: readonly number[] }): void {
  identity = { ...info, chain: info.chain ?? forkingChain ?? [] };
  native.processIdentity(JSON.stringify(identity));
  forkingChain = null;
  children.clear();
  exitHookInstalled = false; // a fork child dropped the parent's 'exit' listeners
}

/** kill()'s argument: a signal this OS knows, by name or number (TypeError / RangeError otherwise). */
function checkKillSignal(signal: unknown): NodeJS.Signals | number {
  const known = osConstants.signals as Record<string, number>;
  if (typeof signal === 'string') {
    if (Object.hasOwn(known, signal)) return signal as NodeJS.Signals;
    throw new RangeError(`Unknown signal ${JSON.stringify(signal)}: use a name such as 'SIGTERM', 'SIGKILL' or 'SIGUSR2' (os.constants.signals lists them)`);
  }
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && Object.values(known).includes(signal)) return signal;
    throw new RangeError(`Unknown signal number ${signal}: use one of os.constants.signals, or a name such as 'SIGTERM'`);
  }
  throw new TypeError(`Expected a signal name or number, got ${describeValue(signal)}`);
}

/** How a chain reads in a name: `1:2`, as Python's `Process-1:2`. */
function chainName(chain: readonly number[]): string {
  return chain.join(':');
}

/** A name for a new Pool, distinct across the process tree: `Pool-1`, and in Process-1 `Pool-1:1`. */
export function nextPoolName(): string {
  return `Pool-${chainName([...identity.chain, nextNumber('Pool')])}`;
}

export function currentProcess(): CurrentProcessInfo {
  const me = identity;
  return Object.freeze({
    // Settable, as Python's current_process().name: what this process's
    // children see as their parent's name (it threw "read only"; helper-68).
    get name(): string {
      return processName();
    },
    set name(v: string) {
      if (typeof v !== 'string') throw new TypeError(`Expected "name" to be a string, got ${describeValue(v)}`);
      identity.name = v;
      // The process's name, every thread's (review helper-104).
      native.processIdentity(JSON.stringify(identity));
    },
    pid: native.getpid(),
    daemon: me.daemon,
    startMethod: me.startMethod,
    isAlive: () => true,
    // console.log showed name: [Getter/Setter] (helper-71).
    [Symbol.for('nodejs.util.inspect.custom')](): string {
      return `<CurrentProcess name='${processName()}' pid=${native.getpid()}${me.daemon ? ' daemon' : ''}${me.startMethod === null ? '' : ` ${me.startMethod}`}>`;
    },
  });
}

/** The process that started this one, or null in the main process. */
export function parentProcess(): ProcessInfo | null {
  const me = identity;
  if (me.startMethod === null) return null;
  const pid = me.parentPid;
  return Object.freeze({
    name: me.parentName,
    pid,
    daemon: false,
    startMethod: null,
    isAlive: () => native.isAlive(pid),
  });
}

/** The children of this process that are still running. */
export function activeChildren(): Process[] {
  const out: Process[] = [];
  for (const p of children) {
    if (p.isAlive()) out.push(p);
    else children.delete(p);
  }
  return out;
}

export function cpuCount(): number {
  return availableParallelism();
}

function checkTarget(target: unknown): { fn?: (...args: unknown[]) => unknown; child: ChildTarget } {
  const child = describeTask(target, 'target');
  return child.kind === 'source' ? { fn: target as (...args: unknown[]) => unknown, child } : { child };
}

/** Thrown in a 'fork' child by start() so the parent's code after start() never runs there. */
export class ForkChildExit extends Error {
  readonly forkChild = true;
  constructor() {
    super('multiproc: the fork child of a Process is leaving its parent\'s code (rethrow errors with .forkChild === true)');
  }
}

/**
 * No child will receive the args of `spec` (its start failed): their pending
 * slots emptied, their handles' references given back, but for the slots a
 * child took over all the same (see segment.ts releasingUnsent).
 */
export function unsent(spec: Pick<ChildSpec, 'args' | 'pending'>): void {
  const lost = cancelPending(spec.pending);
  if (lost.length === 0) releaseHandles(deserialize(spec.args));
  else releasingUnsent(lost, () => releaseHandles(deserialize(spec.args)));
}

/** `A`: the target's parameters (see ProcessOptions); a type of construction only, so every Process<A> is a Process. */
export class Process<A extends readonly unknown[] = never[]> {
  #target: { fn?: (...args: unknown[]) => unknown; child: ChildTarget };
  #args: readonly unknown[];
  #name: string;
  #daemon: boolean;
  /** join() calls pending: each keeps the child ref()d, a daemon too, until the last is done. */
  #joins = 0;
  /** kOnExit's callbacks, and whether its one reaction on the exit is in place. */
  readonly #exitWatchers = new Set<() => void>();
  #exitWatched = false;
  #method: StartMethod | undefined;
  readonly #place: ChildPlace;
  readonly #chain: readonly number[];
  #popen: Popen | null = null;
  /** The process that started it (see #checkParent). */
  #startedBy = 0;
  #closed = false;
  /** @internal See kKillAtExit. */
  [kKillAtExit] = false;
  /** Between [kStartAsync]() and its child's pid. */
  #starting = false;

  constructor(options: ProcessOptions<A>) {
    if (typeof options !== 'object' || options === null) {
      const hint = typeof options === 'function' ? '; did you mean new Process({ target: fn })?' : '';
      throw new TypeError(`Expected Process options { target, args?, name?, daemon?, startMethod?, env?, cwd? }, got ${describeValue(options)}${hint}`);
    }
    checkOptionNames(options, ['target', 'args', 'name', 'daemon', 'startMethod', 'env', 'cwd'], 'Process()');
    if (options.target === undefined && typeof (this as { run?: unknown }).run === 'function') {
      // Python's other way: subclass Process and override run().
      throw new TypeError(
        'A Process subclass with a run() method is not how a child gets its code here: a method cannot be sent to the child. ' +
          'Pass { target: fn, args } (a self-contained function, or { module, export } for code that needs imports); see docs/process.md',
      );
    }
    this.#target = checkTarget(options.target);
    const args = options.args ?? [];
    if (!Array.isArray(args)) throw new TypeError(`Expected "args" to be an array, got ${describeValue(args)}`);
    this.#args = args;
    if (options.name !== undefined && typeof options.name !== 'string') {
      throw new TypeError(`Expected "name" to be a string, got ${describeValue(options.name)}`);
    }
    this.#chain = [...identity.chain, nextNumber('Process')];
    this.#name = options.name ?? `Process-${chainName(this.#chain)}`;
    if (options.daemon !== undefined && typeof options.daemon !== 'boolean') {
      throw new TypeError(`Expected "daemon" to be a boolean, got ${describeValue(options.daemon)}`);
    }
    this.#daemon = options.daemon ?? identity.daemon;
    if (options.startMethod !== undefined) context.checkStartMethod(options.startMethod);
    this.#method = options.startMethod;
    this.#place = checkChildPlace(options.env, options.cwd);
  }

  get name(): string {
    return this.#name;
  }

  set name(v: string) {
    if (typeof v !== 'string') throw new TypeError(`Expected "name" to be a string, got ${describeValue(v)}`);
    this.#name = v;
  }

  get daemon(): boolean {
    return this.#daemon;
  }

  set daemon(v: boolean) {
    if (this.#popen !== null) throw new ProcessError('daemon can only be set before start()');
    this.#daemon = Boolean(v);
  }

  /** The start method this process uses (the default one unless given). */
  get startMethod(): StartMethod {
    return this.#method ?? context.getStartMethod();
  }

  /** Throws after close(), as Python's pid/ident: the pid may belong to another process by then. */
  get pid(): number | null {
    // Only closed() refuses: a fork child's copy reads it too (a number, no
    // question to the OS), as Python's pid does (helper-78).
    if (this.#closed) throw new ProcessError(`Cannot read the pid of ${this.#name}: the Process object is closed`);
    return this.#popen?.pid ?? null;
  }

  /** @internal See kLostWithServer. */
  get [kLostWithServer](): boolean {
    return (this.#popen as { lostWithServer?: boolean } | null)?.lostWithServer === true;
  }

  /** null while running (or before start); the exit code, or -N when killed by signal N. */
  get exitCode(): number | null {
    // Not this process's child (a fork child's copy): unknown here, as Python's exitcode says None.
    if (this.#popen !== null && this.#startedBy !== native.getpid()) return null;
    return this.#popen?.poll() ?? null;
  }

  #check(what: string): void {
    if (this.#closed) throw new ProcessError(`Cannot ${what} ${this.#name}: the Process object is closed`);
    if (this.#popen !== null) this.#checkParent(what);
  }

  /**
   * A child made by fork() copies its parent's Process objects: it is not
   * their processes' parent and cannot wait for them (Python: "can only join
   * a child process"; before, a raw "waitpid failed: No child processes").
   */
  #checkParent(what: string): void {
    if (this.#startedBy !== native.getpid()) {
      throw new ProcessError(`Cannot ${what} ${this.#name}: it was started by process ${this.#startedBy}, and only a process's parent can (a child made by fork() inherits its parent's Process objects)`);
    }
  }

  start(): void {
    const method = this.#checkStart();
    let popen: Popen;
    if (method === 'fork') {
      forkingChain = this.#chain; // read by enterChild in the fork child
      try {
        popen = this.#startFork();
      } finally {
        forkingChain = null;
      }
    } else {
      popen = this.#startWithSpec(method);
    }
    this.#started(popen);
  }

  /**
   * start() for a Pool's workers: with 'forkserver' the event
   * loop turns while the zygote forks (tens of ms under load, each one a
   * stall when start() waited for it). pid is null until it resolves.
   * 'spawn' starts as start() does: that time is Node's own spawn (libuv
   * forks and waits for the exec, ~6 ms here), which has no async form.
   */
  async [kStartAsync](): Promise<void> {
    const method = this.#checkStart();
    if (method !== 'forkserver') {
      this.start();
      return;
    }
    this.#starting = true;
    let popen: Popen;
    // A 'fork' child copies this continuation if it forked while it was
    // queued (a new Pool's starts are pending after new Pool() returns): the
    // child is not this child's parent, and the pending slots of its args are
    // the parent's. Before, the child took the parent's pool worker for a
    // child of its own, and its exit hook SIGKILLed it (the pool replaced
    // it). See also ForkserverPopen.startAsync.
    const gen = forkGeneration();
    try {
      const spec = this.#spec(method);
      try {
        const { ForkserverPopen } = require('./popen/forkserver') as typeof import('./popen/forkserver');
        popen = await ForkserverPopen.startAsync(spec);
        if (forkGeneration() !== gen) await kInheritedCall;
        popen.watchPending(spec.pending);
        this.#sentTo(popen.pid);
      } catch (e) {
        if (forkGeneration() !== gen) await kInheritedCall;
        unsent(spec);
        throw e;
      }
    } finally {
      this.#starting = false;
    }
    this.#started(popen);
  }

  /** What start() checks first; returns the start method. */
  #checkStart(): StartMethod {
    this.#check('start');
    refuseWhileImportingTarget('Process.start()');
    if (this.#popen !== null) throw new ProcessError(`${this.#name} was already started (pid ${this.#popen.pid}); a Process can only be started once`);
    if (this.#starting) throw new ProcessError(`${this.#name} is being started already; a Process can only be started once`);
    const method = this.startMethod;
    // A fork-method child runs a function itself (the closure), so only a module target can hit this.
    checkForkedImport(this.#target.child, method !== 'spawn', `The target of ${this.#name}`);
    if (this.#place.cwd !== undefined) checkCwd(this.#place.cwd, this.#name);
    // startMethod says how it was started, not the default of later (a setStartMethod after start() changed it).
    this.#method = method;
    return method;
  }

  #started(popen: Popen): void {
    this.#popen = popen;
    this.#startedBy = native.getpid();
    children.add(this);
    popen.setRef(!this.#daemon);
    void popen.exited.then(() => children.delete(this));
    installExitHook();
  }

  #spec(method: StartMethod): ChildSpec {
    let args: Uint8Array;
    let reduced: unknown;
    const taken: Handle[] = [];
    try {
      reduced = reduce(this.#args, taken);
      args = serialize(reduced);
    } catch (e) {
      if (reduced !== undefined && reduced !== this.#args) releaseHandles(reduced); // (the args themselves hold no handle: not touched)
      // A closed shared object is a ClosedError, as under 'fork' and in Queue.put (before: a TypeError advising shared objects; helper-72).
      // (A closed pipe end says EOFError, as its own calls do: review helper-79.)
      if (e instanceof ClosedError || e instanceof EOFError) throw new ClosedError(`The args of ${this.#name} hold a closed object: ${e.message}; close it after start(), not before`, { cause: e });
      throw new TypeError(`The args of ${this.#name} cannot be sent to another process (${(e as Error).message}); ` +
        'use values structured clone carries, or shared objects (Value, SharedArray, Lock, Queue...)', { cause: e });
    }
    return {
      target: this.#target.child,
      args,
      name: this.#name,
      daemon: this.#daemon,
      parentPid: native.getpid(),
      parentName: processName(),
      chain: this.#chain,
      startMethod: method,
      defaultMethod: context.startMethodToInherit(),
      cwd: this.#place.cwd ?? process.cwd(),
      ...(this.#place.cwd !== undefined ? { base: process.cwd() } : {}),
      ...(this.#place.env !== undefined ? { env: this.#place.env } : {}),
      pending: reservePending(taken),
    };
  }

  #startWithSpec(method: 'spawn' | 'forkserver'): Popen {
    const spec = this.#spec(method);
    try {
      let popen: Popen;
      if (method === 'spawn') {
        const { SpawnPopen } = require('./popen/spawn') as typeof import('./popen/spawn');
        popen = new SpawnPopen(spec);
      } else {
        const { ForkserverPopen } = require('./popen/forkserver') as typeof import('./popen/forkserver');
        popen = ForkserverPopen.start(spec);
      }
      popen.watchPending(spec.pending);
      this.#sentTo(popen.pid);
      return popen;
    } catch (e) {
      unsent(spec);
      throw e;
    }
  }

  #startFork(): Popen {
    const fork = require('./popen/fork') as typeof import('./popen/fork');
    const reason = fork.forkUnavailableReason();
    if (reason !== null) throw new ProcessError(`The 'fork' start method is not available: ${reason}`);
    const { runInForkChild } = require('./entry/bootstrap') as typeof import('./entry/bootstrap');
    const info = { name: this.#name, daemon: this.#daemon, parentPid: native.getpid(), parentName: processName(), ...this.#place };
    const target = this.#target;
    // Handles, as for a spawned child, not the objects themselves: the child
    // then holds references of its own (closing the parent's copy of a pipe
    // end right after start() ended the child's end too: the end's count
    // said one process) and gives them back when it ends.
    const taken: Handle[] = [];
    const args = reduceForFork([...this.#args], taken) as unknown[];
    // And a reference of the child's own in everything this process holds,
    // which the child copies (see duplicateForFork), counted in one pending
    // slot per segment with the args' references.
    const { duplicateEndsForFork } = require('./connection') as typeof import('./connection');
    const copies = duplicateForFork(taken);
    const pending = copies.pending;
    const ends = duplicateEndsForFork();
    const undo = [copies.undo, ends.undo];
    let popen: Popen;
    try {
      popen = new fork.ForkPopen((watchdogRead) => {
        fork.forgetForkState();
        (require('./popen/forkserver') as typeof import('./popen/forkserver')).forgetForkserver();
        runInForkChild(target.fn ?? target.child, args, pending, info, watchdogRead);
        throw new ForkChildExit();
      });
    } catch (e) {
      if (!(e instanceof ForkChildExit)) {
        forkDone();
        for (const u of undo) u(); // the slots emptied, the copies' references given back
        releaseHandles(args);
      }
      throw e;
    }
    forkDone();
    ends.forkedAs(popen.pid);
    popen.watchPending(pending);
    this.#sentTo(popen.pid);
    return popen;
  }

  /** The child holds its args' shared objects from its start, even before it attaches them (a pipe end must say so: see Connection[kSentTo]). */
  #sentTo(pid: number): void {
    forEachShared(this.#args, (o) => (o as { [kSentTo]?: (pid: number) => void })[kSentTo]?.(pid));
  }

  /**
   * Resolves with exitCode once the process has exited. Unlike join(), it
   * does not keep the event loop alive: for watchers (a pool noticing a dead
   * worker) rather than for waiting on completion.
   */
  whenExited(): Promise<number> {
    const popen = this.#popen;
    if (popen === null) return Promise.reject(new ProcessError(`${this.#name} was never started`));
    return popen.exited;
  }

  /**
   * @internal Runs `cb` once the process has exited; returns the function that stops
   * watching. One reaction on the exit promise however many watch: a race
   * against it per join(timeout) or wait() added one each, kept until the
   * exit (a loop of join(1) on a live worker grew the heap ~300 bytes a
   * call; helper-76, review helper-75).
   */
  [kOnExit](cb: () => void): () => void {
    const popen = this.#popen;
    if (popen === null) throw new ProcessError(`${this.#name} was never started`);
    if (popen.returncode !== null) {
      queueMicrotask(cb);
      return () => {};
    }
    if (!this.#exitWatched) {
      this.#exitWatched = true;
      const fire = (): void => {
        for (const f of this.#exitWatchers) f();
        this.#exitWatchers.clear();
      };
      popen.exited.then(fire, fire);
    }
    const entry = (): void => cb(); // its own entry: one cb may watch twice
    this.#exitWatchers.add(entry);
    return () => this.#exitWatchers.delete(entry);
  }

  /**
   * What to give mp.wait() to wake when this process exits, as Python's
   * `wait([p.sentinel])`: the Process itself (a porter's `p.sentinel` was
   * undefined; helper-80).
   */
  get sentinel(): this {
    return this;
  }

  /** Resolves when the process has exited, or when timeoutMs passes (check exitCode). */
  async join(timeoutMs?: number): Promise<void> {
    this.#check('join');
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const popen = this.#popen;
    if (popen === null) throw new ProcessError(`Cannot join ${this.#name}: it was never started`);
    if (popen.poll() !== null) return;
    // While someone waits, even a daemon child keeps the loop alive: until
    // the last pending join() is done (before, a timed join() that returned
    // first dropped the ref another join() still needed, and a daemon child
    // was SIGTERMed at exit under a pending join: helper-60).
    this.#joins++;
    popen.setRef(true);
    try {
      if (deadline === Infinity) {
        await popen.exited;
        return;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          off();
          resolve();
        };
        const off = this[kOnExit](done);
        const timer = setTimeout(done, Math.max(0, deadline - performance.now()));
      });
    } finally {
      popen.setRef(--this.#joins > 0 || (!this.#daemon && popen.returncode === null));
    }
  }

  /** Blocks the thread (and the event loop) until the process exits or timeoutMs passes. */
  joinSync(timeoutMs?: number): void {
    this.#check('join');
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const popen = this.#popen;
    if (popen === null) throw new ProcessError(`Cannot join ${this.#name}: it was never started`);
    popen.waitSync(deadline === Infinity ? Infinity : Math.max(0, deadline - performance.now()));
  }

  isAlive(): boolean {
    this.#check('query');
    return this.#popen !== null && this.#popen.poll() === null;
  }

  #signal(sig: NodeJS.Signals | number, what: string): void {
    this.#check(what);
    if (this.#popen === null) throw new ProcessError(`Cannot ${what} ${this.#name}: it was never started`);
    this.#popen.signal(sig);
  }

  /** Sends SIGTERM (no-op once the process has exited). */
  terminate(): void {
    this.#signal('SIGTERM', 'terminate');
  }

  /**
   * Sends SIGKILL, as Python's kill(), or the signal given, as Node's
   * ChildProcess.kill(signal): a name ('SIGUSR2') or its number (SIGUSR1
   * starts a Node child's debugger, it does not end it). No-op once
   * the process has exited.
   */
  kill(signal: NodeJS.Signals | number = 'SIGKILL'): void {
    this.#signal(checkKillSignal(signal), 'kill');
  }

  /**
   * Releases the parent's resources for a finished process. Afterwards, as in
   * Python, name, daemon, startMethod and exitCode still read; pid and every
   * method throw ProcessError.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#starting) throw new ProcessError(`Cannot close ${this.#name}: it is being started`);
    if (this.#popen !== null && this.#popen.poll() === null) {
      throw new ProcessError(`Cannot close ${this.#name}: it is still running (join, terminate or kill it first)`);
    }
    this.#popen?.close();
    this.#closed = true;
    children.delete(this);
  }

  get [Symbol.toStringTag](): string {
    return 'Process';
  }

  toString(): string {
    const state = this.#popen === null ? 'initial' : this.#popen.returncode === null ? 'started' : `stopped exitcode=${this.#popen.returncode}`;
    return `<Process name='${this.#name}' ${state}${this.#daemon ? ' daemon' : ''}>`;
  }

  /** console.log shows what toString() says (it showed only an internal symbol; helper-68). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

// Structured clone would deliver {} (Python refuses to pickle a Process too).
Object.defineProperty(Process.prototype, kNotSendable, {
  value: 'A Process object cannot be sent to another process (only its parent can join or kill it): send its pid, or give the processes an Event, a Queue or a Pipe to talk through.',
});

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Node prints an uncaught error only after the 'exit' listeners (a
  // rejected top-level await in an ES module): while this hook joins a child
  // that waits for the script (a consumer for its sentinel), the error went
  // unseen, for good if the child never ended (helper-59).
  let uncaught: unknown;
  process.on('uncaughtExceptionMonitor', (err) => {
    // Handled by a listener of the program's (the process goes on) or printed by one: not ours to tell.
    if (process.listenerCount('uncaughtException') === 0 && !process.hasUncaughtExceptionCaptureCallback()) uncaught ??= err;
  });
  process.on('exit', () => {
    // Python's _exit_function: terminate daemons, then join everyone. One
    // second for all the daemons together, not each (an unclosed Pool(16)
    // delayed the exit by 16 s: its workers ignore SIGTERM, and get SIGKILL now).
    const live = activeChildren();
    for (const p of live) {
      if (p.daemon) {
        if (p[kKillAtExit]) p.kill();
        else p.terminate();
      }
    }
    const waitedFor = live.filter((p) => !p.daemon && p.isAlive());
    if (uncaught !== undefined && waitedFor.length > 0) {
      const what = uncaught instanceof Error ? `${uncaught.name}: ${uncaught.message}` : String(uncaught);
      const who = waitedFor.map((p) => `${p.name} (pid ${p.pid})`).join(', ');
      process.stderr.write(`multiproc: this process is ending on an uncaught error (${what}); it first waits for its non-daemon children to end, as Python does: ${who}. ` +
        `The error's stack is printed once they have. Not to wait, make them daemon: true or terminate() them.\n`);
    }
    const deadline = performance.now() + 1000;
    for (const p of live) {
      if (p.daemon) {
        p.joinSync(Math.max(0, deadline - performance.now()));
        if (p.isAlive()) p.kill();
      }
      p.joinSync();
    }
    (require('./popen/forkserver') as typeof import('./popen/forkserver')).stopForkserver();
  });
}
