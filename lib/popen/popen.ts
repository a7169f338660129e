/**
 * The one interface every start method implements (CPython's popen_*.py):
 * a started child, as the parent sees it. Process (lib/process.ts) owns the
 * policy (names, daemons, validation); a Popen only launches and watches.
 *
 * Exports: Popen, BasePopen, StartMethod, ChildSpec, ChildTarget, exitCodeOf,
 * encodeSpec/decodeSpec, sleepSync, waitSyncByPolling.
 */
import { constants } from 'node:os';
import { deserialize, serialize } from 'node:v8';
import { holderDied } from '../resource-tracker';
import { reclaimPendingOnceGone, type PendingSlot } from '../segment';

export type StartMethod = 'spawn' | 'forkserver' | 'fork';

export interface Popen {
  readonly method: StartMethod;
  readonly pid: number;
  /** null while running; the exit code, or -N when killed by signal N. */
  readonly returncode: number | null;
  /** Settles (never rejects) with returncode as soon as the parent learns of the exit. */
  readonly exited: Promise<number>;
  /** Non-blocking check; returns returncode. */
  poll(): number | null;
  /** Blocks the thread until the child exits or timeoutMs passes; returns returncode. */
  waitSync(timeoutMs: number): number | null;
  /** Sends a signal unless the child is known to have exited. */
  signal(sig: NodeJS.Signals | number): void;
  /** Whether this child keeps the parent's event loop alive (non-daemon children do). */
  setRef(ref: boolean): void;
  /** Releases parent-side resources (the child must have exited). */
  close(): void;
  /** Gives back at the child's exit what it did not take over of its args' pending slots (see BasePopen). */
  watchPending(slots: readonly PendingSlot[] | undefined): void;
}

/** What a child runs: a function's source text or a module export. */
export type { TaskTarget as ChildTarget } from '../task';
import type { TaskTarget as ChildTarget } from '../task';

/** Everything a spawn/forkserver child needs, sent as one v8-serialized message. */
export interface ChildSpec {
  target: ChildTarget;
  /** v8.serialize(reduce(args)): stays opaque until the child rebuilds it. */
  args: Uint8Array;
  name: string;
  daemon: boolean;
  parentPid: number;
  parentName: string;
  /** The child's identity chain (see Identity in process.ts). */
  chain: readonly number[];
  startMethod: StartMethod;
  /** The parent's default start method, if it set one (see context.inheritStartMethod). */
  defaultMethod?: StartMethod | null;
  cwd: string;
  /**
   * With a `cwd` of its own: the parent's directory at start(), where a
   * function target's require() resolves from (as it would without one:
   * the function's imports are the parent's). Absent: cwd.
   */
  base?: string;
  /** The child's whole environment, when Process was given `env` (see ProcessOptions.env). */
  env?: Record<string, string>;
  /** The holder slots that count the args' references until the child takes them over (segment.ts adoptingArgs). */
  pending?: PendingSlot[];
}

export function encodeSpec(spec: ChildSpec): Buffer {
  return serialize(spec);
}

export function decodeSpec(buf: Uint8Array): ChildSpec {
  return deserialize(buf) as ChildSpec;
}

/** 0..255 for a normal exit, -N for death by signal N (as Python's Process.exitcode). */
export function exitCodeOf(code: number | null, signal: number | NodeJS.Signals | null): number {
  if (signal !== null && signal !== undefined) {
    const n = typeof signal === 'number' ? signal : constants.signals[signal];
    return -(n ?? 0);
  }
  return code ?? 0;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread for ms (used only by the *Sync paths). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** A promise plus its resolver, for `exited`. */
export function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** waitSync by polling, with a nap that grows to 10 ms (spawn and fork children). */
export function waitSyncByPolling(poll: () => number | null, timeoutMs: number): number | null {
  const deadline = performance.now() + timeoutMs;
  let nap = 0.25;
  let code: number | null;
  while ((code = poll()) === null) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    sleepSync(Math.min(nap, left));
    nap = Math.min(nap * 2, 10);
  }
  return code;
}

/**
 * What every start method shares: the exit recorded once (`finish`, which
 * also stops keeping the loop alive and settles `exited`), `poll` over the
 * method's own non-blocking `check`, a polling `waitSync`, and signals that
 * are never sent to a pid known to have exited (it may be reused by then).
 */
export abstract class BasePopen implements Popen {
  abstract readonly method: StartMethod;
  abstract readonly pid: number;
  readonly exited: Promise<number>;
  #returncode: number | null = null;
  readonly #resolve: (code: number) => void;
  /** Killed because the forkserver that started it died (a kill of the zygote, the OOM killer), not by anything it ran. */
  lostWithServer = false;
  /** Its args' pending holder slots: what it never took over is given back at its exit (see reclaimPending). */
  #pending: readonly PendingSlot[] = [];

  constructor() {
    const d = deferred<number>();
    this.exited = d.promise;
    this.#resolve = d.resolve;
  }

  get returncode(): number | null {
    return this.#returncode;
  }

  finish(code: number): void {
    if (this.#returncode !== null) return;
    this.#returncode = code;
    // Not reclaimPending() at once: some finishes only assume the exit (the
    // zygote's shutdown() or death finishes its children at -9 before the
    // kernel has killed them), and a child that takes its slots over after
    // they were given back counts its args in a slot of its own: the same
    // references given back twice (see reclaimPendingOnceGone).
    const pending = this.#pending;
    this.#pending = [];
    if (pending.length > 0) reclaimPendingOnceGone(this.pid, pending);
    // Killed: it gave back none of the segment references it held.
    if (code < 0) holderDied();
    this.setRef(false);
    this.#resolve(code);
  }

  /** Hands over the pending slots of the args it was started with (once: right after the start). */
  watchPending(slots: readonly PendingSlot[] | undefined): void {
    if (slots === undefined || slots.length === 0) return;
    if (this.#returncode !== null) reclaimPendingOnceGone(this.pid, slots);
    else this.#pending = slots;
  }

  /** Looks for the exit status without blocking; calls finish() when it finds one. */
  protected abstract check(): void;

  poll(): number | null {
    if (this.#returncode === null) this.check();
    return this.#returncode;
  }

  waitSync(timeoutMs: number): number | null {
    return waitSyncByPolling(() => this.poll(), timeoutMs);
  }

  signal(sig: NodeJS.Signals | number): void {
    if (this.poll() !== null) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      // exited between poll and kill
    }
  }

  abstract setRef(ref: boolean): void;

  close(): void {}
}
