/**
 * The child's main, for every start method:
 * - spawn: this file is the script `node` runs; the spec arrives on fd 3;
 * - forkserver: the zygote (forkserver-main.ts) calls runForked() in the
 *   fork child, with the spec it received;
 * - fork: lib/popen/fork.ts calls runInForkChild() with the very closure.
 *
 * In every case: die with the parent (PR_SET_PDEATHSIG plus an EOF watchdog),
 * rebuild the args (shared objects re-attach), run the target, await it,
 * and exit 0, or 1 with the error and its stack on stderr.
 *
 * A forked child must never go through Node's normal shutdown (it joins V8
 * platform threads that do not exist after fork: a hang or a crash), so for
 * those the exit path ends in native.exitNow (see installForkedExit).
 */
import { Server, Socket } from 'node:net';
import { readSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deserialize, serialize } from 'node:v8';
import { native } from '../native';
import { noop, reraise, signalOfAbort } from '../abort';
import { freshCryptoCaches, reseedMathRandom } from '../random';
import { onUnsettledAtExit } from './unsettled';
import { ProcessError } from '../errors';
import { rehearseChannel } from '../channel';
import { rehearsePoolWorker } from './pool-worker';
import { rehearseWake, resetAfterFork } from '../wake-socket';
import { forgetInheritedWaits } from '../wait';
import { quietTrackerLoss, restampAfterFork } from '../resource-tracker';
import { decodeSpec, type ChildSpec, type ChildTarget, type StartMethod } from '../popen/popen';
import { disposeShared, forEachShared, rebuild, reduce } from '../reduction';
import { adoptInheritedEnds, closeAllEnds, forgetInheritedEnds, Pipe, rebuildingArgs, rehearseSleepingRecv } from '../connection';
import { explainReferenceError, loadTask, usesLoaderHooks } from '../task';
import { activeChildren, enterChild, stdinMade } from '../process';
import { inheritStartMethod } from '../context';
import { adoptInheritedAttachments, adoptingArgs, attachPrivately, forgetInheritedAttachments, releaseAllAttachments, type PendingSlot } from '../segment';
import '../index'; // registers every shareable kind, so handles in args rebuild

const kSigKill = 9;

/** First thing in a child: we are killed if `expectedParent` dies (Linux: the kernel; macOS: a kqueue thread, see platform_darwin.cc). */
export function dieWithParent(expectedParent: number): void {
  native.setParentDeathSignal(kSigKill);
  // The parent may have died before that: then we were re-parented already.
  if (expectedParent > 0 && native.getppid() !== expectedParent) native.exitNow(1);
}

/**
 * The portable half: EOF on `fd` (whose write side only the parent holds)
 * means the parent is gone; needed on macOS, and a second line of defence.
 */
export function watchParentFd(fd: number): void {
  // Native (fdwatch.cc): a net.Socket here cost a forked child ~1.6 ms of
  // page faults on this path, and nothing about it needs JS.
  native.dieOnEof(fd);
}

/**
 * Makes every way out of a forked child end in _exit: process.exit() (via
 * reallyExit), a drained loop ('exit' listener appended last, on each
 * 'beforeExit'), and uncaught errors (handled, then process.exit).
 */
export function installForkedExit(beforeExit: () => void): void {
  lastAtExit(beforeExit, (code) => native.exitNow(code));
}

/**
 * A spawned child gives its args back after the target's own 'exit'
 * listeners, as a forked one does (installForkedExit): registered first, the
 * release ran before them, and a listener that used an arg (a Value) threw
 * "closed" and turned the exit code to 1.
 */
function releaseAtExit(release: () => void): void {
  const proc = process as unknown as { reallyExit(code?: number): never };
  const real = proc.reallyExit;
  lastAtExit(release, (code) => real.call(process, code));
}

/**
 * Runs `last` after everything else on every way out, then `exit`:
 * process.exit() ends in reallyExit; a loop that drains emits 'beforeExit'
 * first, when the 'exit' listener is (re)appended, so that it runs last.
 */
function lastAtExit(last: () => void, exit: (code: number) => never): void {
  const proc = process as unknown as { reallyExit(code?: number): never };
  proc.reallyExit = (code?: number): never => {
    last();
    return exit(code ?? 0);
  };
  const onExit = (code: number): void => {
    last();
    // process.exitCode as an earlier 'exit' listener left it (see watchUnsettled).
    exit(typeof process.exitCode === 'number' ? process.exitCode : typeof code === 'number' ? code : 0);
  };
  process.on('beforeExit', () => {
    process.removeListener('exit', onExit);
    process.on('exit', onExit);
  });
}

function report(name: string, err: unknown): void {
  const body = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  let text = `Process ${name} (pid ${native.getpid()}) failed:\n${body}\n`;
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof Error && cause.stack) text += `Caused by: ${cause.stack}\n`;
  process.stderr.write(text);
}

/**
 * A ForkChildExit: a 'fork' grandchild leaving the code it shares with its
 * parent (the parent's target, which started it). It is not that target
 * failing, in either process.
 */
function isForkChildExit(err: unknown): boolean {
  return (err as { forkChild?: unknown } | null)?.forkChild === true;
}

/**
 * A target that let the AbortError of a pool stopped by SIGTERM/SIGINT go
 * (terminate() of a child running a Pool): the child dies of that signal, as
 * with no pool, not of "an error" with code 1 and a stack (helper-59).
 */
function diesOfSignalAbort(err: unknown): void {
  const sig = signalOfAbort(err);
  if (sig !== undefined) reraise(sig);
}

function installErrorExit(name: string): void {
  process.on('uncaughtException', (err) => {
    if (isForkChildExit(err)) return; // ForkChildExit leaving the parent's code
    report(name, err);
    process.exit(1);
  });
}

/**
 * Closes the shared objects the args brought, and gives back every other
 * reference this process still holds (releaseAllAttachments), so their
 * segments can be unlinked by refcount: once, whichever way the process
 * ends first.
 */
function argsReleaser(args: () => unknown): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      forEachShared(args(), disposeShared);
    } catch {
      // a Proxy or a getter in what the target left there: the rest is released below anyway
    }
    closeAllEnds();
    releaseAllAttachments();
  };
}

/** See unsettled.ts: exit code 13 and a line that says why. Returns the function to call once the target settled. */
function watchUnsettled(name: string): () => void {
  return onUnsettledAtExit(() => {
    process.exitCode = 13;
    process.stderr.write(`Process ${name} (pid ${native.getpid()}): its target returned a promise that never settled, with nothing left to wait on (the event loop is empty); exit code 13, as Node gives an unsettled top-level await\n`);
  });
}

async function runTarget(fn: (...args: unknown[]) => unknown, args: unknown[], name: string, method: StartMethod, fromSource: boolean): Promise<void> {
  const settled = watchUnsettled(name);
  try {
    await fn(...args);
    settled();
  } catch (err) {
    settled();
    if (isForkChildExit(err)) return; // a fork grandchild leaving; its own runInForkChild ends it
    diesOfSignalAbort(err);
    report(name, fromSource ? explainReferenceError(err, `Under the '${method}' start method a function target`) : err);
    process.exit(1);
  }
}

/** Runs a decoded spec (spawn and forkserver children). */
export async function runSpec(spec: ChildSpec, forked: boolean): Promise<void> {
  enterChild({ name: spec.name, daemon: spec.daemon, startMethod: spec.startMethod, parentPid: spec.parentPid, parentName: spec.parentName, chain: spec.chain });
  inheritStartMethod(spec.defaultMethod);
  installErrorExit(spec.name);
  let args: unknown[] = [];
  const release = argsReleaser(() => args);
  if (forked) installForkedExit(release);
  else releaseAtExit(release);
  let fn: (...args: unknown[]) => unknown;
  try {
    // A spawned child too: it starts where the parent was launched (paths.ts).
    if (process.cwd() !== spec.cwd) process.chdir(spec.cwd);
    if (forked && spec.env !== undefined) replaceEnv(spec.env);
    args = adoptingArgs(spec.pending, () => rebuildingArgs(() => rebuild(deserialize(spec.args)))) as unknown[];
    fn = await loadTask(spec.target, spec.base ?? spec.cwd);
  } catch (err) {
    report(spec.name, err);
    process.exit(1);
  }
  await runTarget(fn, args, spec.name, spec.startMethod, spec.target.kind === 'source');
  // Success: the process ends when its event loop drains, as a `node` script does.
  if (forked) exitWhenIdle();
}

/**
 * A forked child must not let its loop drain for real: Node then calls
 * NodePlatform::DrainTasks, which waits for V8 worker tasks that no thread
 * of the child will ever run (measured: ~25% of GC-heavy forkserver children
 * hung there, even with --single-threaded). So we keep the loop alive with
 * one interval of our own, watch what else keeps it alive, and when nothing
 * does, emit 'beforeExit' as Node would and exit through process.exit().
 */
function exitWhenIdle(): void {
  let delay = 1;
  const keeper = setInterval(() => check(0), 1 << 30);
  // Idle handles do not count (Node's one idle handle stays active while any
  // immediate is queued, this check's own included: see native loopAlive);
  // queued immediates are counted here instead, less the one running (own).
  const othersAlive = (own: number): boolean => {
    keeper.unref();
    let immediates = 0;
    let timeouts = 0;
    for (const r of process.getActiveResourcesInfo()) {
      if (r === 'Immediate') immediates++;
      else if (r === 'Timeout') timeouts++;
    }
    // Ref'd JS timers count by themselves: while a timer callback runs (this
    // check's own, from setTimeout), Node's one timer handle is stopped, and
    // the loop looked idle with the target's timers still pending (they
    // never ran, and their errors were lost).
    const alive = immediates > own || timeouts > 0 || native.loopAlive(true);
    keeper.ref();
    return alive;
  };
  let spins = 0;
  const check = (own: number): void => {
    if (!othersAlive(own)) {
      const code = typeof process.exitCode === 'number' ? process.exitCode : 0;
      process.emit('beforeExit', code);
      if (!othersAlive(own)) process.exit(code);
      delay = 1;
      spins = 0;
    }
    // Something else is pending. Handles closed by the target finish within
    // a loop turn or two, so look again on the next turns first, then back
    // off to a timer (up to 50 ms) for real pending work.
    if (spins++ < 4) {
      setImmediate(check, 1);
      return;
    }
    setTimeout(check, delay, 0).unref();
    delay = Math.min(delay * 2, 50);
  };
  setImmediate(check, 1);
}

let rehearsals = 0;

/**
 * Runs, in the zygote, the code paths every forked child runs, so that V8
 * has compiled them before the fork: code compiled lazily in a child is
 * compiled again in every child (measured: destroying the inherited request
 * socket cost ~20-50 ms per child cold, ~2 ms warm). No side effects remain.
 * Each forkserver spare runs it again, for the page first-touches; only the
 * zygote (`inZygote`) rehearses a big map too, whose optimized code the
 * spares inherit.
 */
export async function warmUp(inZygote = false): Promise<void> {
  // Node defines some globals lazily: the first read of `performance` loads
  // and compiles perf_hooks' modules. In a forked child that took 10–12 ms of
  // copy-on-write faults (a trace of a pool's first task: between its job's
  // arrival and the pool worker's first performance.now()); read here, the
  // zygote has them loaded before it forks.
  void performance.now();
  // An import() through the ESM loader (a new module each time: the query
  // string), by the path a module task takes (loadTask, importTarget: code
  // that otherwise runs first, and is compiled, in each worker's first job).
  // Never under loader hooks: a forked child has no hooks thread
  // and its import() would wait forever (see task.ts checkForkedImport).
  if (!usesLoaderHooks()) await loadTask({ kind: 'module', url: `${pathToFileURL(join(__dirname, 'rehearse.mjs')).href}?${++rehearsals}`, export: 'default' });
  const [r, w] = native.pipe();
  const s = new Socket({ fd: r, readable: true, writable: false });
  const nop = (): void => {};
  s.on('end', nop);
  s.on('close', nop);
  s.on('error', nop);
  s.on('data', nop);
  s.unref();
  native.closeFd(w);
  await new Promise<void>((done) => s.once('close', () => done()).destroy());
  // Args shaped like a pool worker's: a pipe end travels as a handle and is
  // attached again (a real segment: the attach path, the Connection and its
  // channels are then compiled before the fork, not in every child).
  // (Measured: a pool's start + first result + shutdown, medians of 7, three
  // A/B rounds: 44.7-46.2 ms without, 38.3-40.2 ms with.) Where no segment
  // can be made (/dev/shm full), the rehearsal goes on without one.
  let pipe: ReturnType<typeof Pipe> | null = null;
  try {
    pipe = Pipe();
  } catch {
    // rehearse the rest
  }
  const spec = decodeSpec(serialize({ target: { kind: 'source', source: '() => 1' }, args: serialize(reduce([pipe?.[1] ?? 1, { initargs: [1, { a: [2] }] }])) }));
  pipe?.[1].close();
  const args = rebuild(deserialize(spec.args)) as unknown[];
  // A pool worker's target, as Pool names it (task.ts caches the module by URL).
  await loadTask({ kind: 'module', url: pathToFileURL(join(__dirname, 'pool-worker.js')).href, export: 'poolWorkerMain' });
  const fn = await loadTask(spec.target, process.cwd());
  await runTarget(fn, args, 'warm-up', 'forkserver', true);
  forEachShared(args, disposeShared); // its args only: the zygote keeps what else it holds
  pipe?.[0].close();
  explainReferenceError(new ReferenceError('x'), 'forkserver');
  await rehearseChannel();
  try {
    await rehearsePoolWorker(inZygote);
    await rehearseSleepingRecv();
  } catch {
    // no segment could be made (/dev/shm full): the workers compile it themselves
  }
  await rehearseWake();
  const keeper = setInterval(nop, 1 << 30);
  keeper.unref();
  native.loopAlive(true);
  process.getActiveResourcesInfo();
  keeper.ref();
  clearInterval(keeper);
  setTimeout(nop, 0).unref();
  await new Promise((done) => setImmediate(done));
}

/** Entry for a child forked by the zygote (called in the child right after fork()). */
/**
 * First in a child made by fork() (forkserver or 'fork'): what it copied of
 * the parent's library state is the parent's. Its wake socket (reading it
 * would steal the parent's wake-ups), its pending waits and polls, and its
 * references to segments (a forkserver child gave back the zygote's at its
 * exit: a preloaded module's Value was unlinked after the first child).
 */
function forgetParent(adopt: boolean): void {
  resetAfterFork();
  forgetInheritedWaits();
  reseedMathRandom(); // its state is the parent's: every child drew the same numbers
  if (adopt) freshCryptoCaches(); // a 'fork' child of the user's program: randomUUID()'s and randomInt()'s caches too
  if (adopt) {
    // 'fork': the parent counted a reference for us in everything it held
    // (duplicateForFork), as fork() duplicates file descriptors.
    adoptInheritedAttachments();
    adoptInheritedEnds();
  } else {
    forgetInheritedAttachments();
    forgetInheritedEnds();
  }
}

export function runForked(specBytes: Uint8Array, zygotePid: number, watchdogFd: number): void {
  patchPid();
  forgetParent(false);
  dieWithParent(zygotePid);
  watchParentFd(watchdogFd);
  void runSpec(decodeSpec(specBytes), true);
}

/**
 * Entry for a spare (see forkserver-main.ts): everything runForked does
 * before the spec, then block until the zygote writes [u32 len][spec] to
 * `specFd`. Blocking is right: nothing else may run in a spare. EOF means the
 * zygote is gone or retired us: leave without a word.
 */
export function runSpare(specFd: number, zygotePid: number, watchdogFd: number): void {
  patchPid();
  forgetParent(false);
  dieWithParent(zygotePid);
  watchParentFd(watchdogFd);
  // A rehearsal first: on a VM a forked child pays for the first touch of
  // every page it uses, even a read (~5 µs; ~25 µs for a copy-on-write
  // write), so running the child's code paths once here, before any request,
  // takes ~10 ms of that off the path of start() (measured: hand-off to exit
  // 20 -> 9 ms). warmUp() leaves nothing behind (it runs in the zygote too).
  // (Spares an old zygote makes after the tracker died said so, one line each: helper-63.)
  quietTrackerLoss(true);
  void warmUp().then(() => {
    quietTrackerLoss(false);
    const len = readExactly(specFd, 4, 0).readUInt32LE(0);
    const spec = readExactly(specFd, len, 0);
    native.closeFd(specFd);
    void runSpec(decodeSpec(spec), true);
  });
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as PromiseLike<unknown>).then === 'function';
}

/** A fork copies the parent's stale pid into process.pid. */
function patchPid(): void {
  Object.defineProperty(process, 'pid', { value: native.getpid(), configurable: true, enumerable: true, writable: false });
  restampAfterFork(); // the tracker's variables name the pid they are for
}

interface InheritedHandle {
  fd?: number;
  _handle?: { fd?: number; readStop?: () => void; close?: () => void; constructor?: { name?: string } } | null;
  destroy?: () => void;
  unref?: () => void;
}

/**
 * The parent's open handles were copied by fork(), and the child's event
 * loop watches them too: left so, it read the parent's stdin, accepted its
 * server's connections and answered its IPC messages with the parent's
 * handlers while the target ran (review helper-102: 14 of 20 stdin lines,
 * 19 of 30 HTTP requests, 24 of 30 messages). So: the parent's stdin stops
 * being read here and fd 0 reads end-of-file (a Python forked child gets
 * /dev/null; epoll refuses that, and libuv aborted when the target read
 * stdin: review helper-103),
 * sockets are closed (only this copy), a TCP server's copy of its listening
 * socket is closed, the IPC channel stops being read, and the rest stops
 * keeping the loop alive. A unix-socket server keeps its handle (closing
 * it would unlink its path for the parent), but its fd becomes a socket
 * that never has data; a UDP socket's copy stops reading (it can still
 * send): only unref'd, they took 16 of 20 connections and ~half the
 * datagrams with the parent's handlers (docs/process.md).
 */
function detachInheritedHandles(): void {
  const getHandles = (process as unknown as { _getActiveHandles?: () => object[] })._getActiveHandles;
  const madeStdin = stdinMade() as (InheritedHandle & { removeAllListeners(): void; autoClose?: boolean; destroy?: () => void }) | null;
  // Whether fd 0 is something of the parent's other than its stdin, which this child could not let go of.
  let fd0Kept = false;
  // Unref'd sockets too (an HTTP agent's free keep-alive socket, a server or
  // UDP socket the parent unref'd): _getActiveHandles() lists only ref'd
  // handles, and this loop read from those (a response meant for the
  // parent's next request on that keep-alive socket, datagrams, connections).
  let handles: (InheritedHandle & object)[];
  native.refSockets?.(true);
  try {
    handles = (getHandles?.call(process) ?? []) as (InheritedHandle & object)[];
  } finally {
    native.refSockets?.(false);
  }
  for (const h of handles) {
    if (h === process.stdout || h === process.stderr) continue;
    const udp = udpHandle(h);
    if (udp !== undefined) {
      // Its copy stops reading here (this loop only): the fd stays the
      // socket, so a target can still send through it, as from a Python
      // forked child (a quiet socket pair in its place lost what went
      // through a connected one, and failed the rest with EISCONN).
      udp?.recvStop?.();
      h.unref?.();
      if (udp?.fd === 0) fd0Kept = true; // (stdin then gets an fd of its own)
      continue;
    }
    const fd = h.fd ?? h._handle?.fd;
    if (fd === 0) {
      if (h === madeStdin) continue; // below
      // A stdin made before this library loaded, or whatever else holds fd
      // 0 (an inetd-style listening socket, a connection that took a closed
      // fd 0): this copy goes without an event (review helper-105: a
      // stdin made here on top of it failed with EEXIST).
      (h as unknown as { removeAllListeners?: () => void }).removeAllListeners?.();
    }
    if (h instanceof Socket && typeof h.destroy === 'function') {
      // Not counted off its server: a server with no handle and no
      // connection left emits 'close', and the parent's listeners ran here
      // (review helper-103).
      (h as { _server?: unknown })._server = null;
      h.destroy();
    } else if (h instanceof Server) {
      const handle = (h as InheritedHandle)._handle;
      if (isTcp(handle)) {
        // The handle's own close(), not an own property that a cluster
        // worker's shared handle has in its place: that one also tells the
        // primary the worker closed it (through the IPC channel, still the
        // parent's here), and the primary let the port go while the parent
        // listened on: the next worker's listen() failed with EADDRINUSE.
        (Object.getPrototypeOf(handle) as { close: () => void }).close.call(handle);
        (h as InheritedHandle)._handle = null;
      } else {
        // A unix-socket server: closing would unlink its path.
        if (fd !== undefined && fd >= 0) native.quietFd(fd, false);
        h.unref();
        if (fd === 0) fd0Kept = true;
      }
    } else h.unref?.();
  }
  // The IPC channel to the process that started the parent: the parent's
  // listeners go, and this copy's fd becomes a socket that never has data
  // (its watcher here still wakes on the parent's messages, and finds
  // nothing; process.send() from the target goes nowhere).
  const channel = (process as unknown as { channel?: { fd?: number; unref?: () => void } }).channel;
  if (channel?.fd !== undefined) {
    process.removeAllListeners('message');
    process.removeAllListeners('disconnect');
    native.quietFd(channel.fd, false);
    channel.unref?.();
    if (channel.fd === 0) fd0Kept = true;
  }
  // fd 0 kept (the parent's unix-socket server or IPC channel on it): the
  // target's stdin reads end-of-file from an fd of its own (Node's would be
  // made on top of fd 0, and failed: EEXIST; review helper-106).
  if (fd0Kept) {
    freshStdin(native.eofFd());
    return;
  }
  // The parent's stdin stream, if it made one since this library loaded
  // (a pipe, a TTY, a file read through fs, touched or read): its listeners
  // go, its handle or fd is let go without an event. Found only among the
  // active handles, an unref'd, paused or file stdin stayed the parent's
  // object here, whose listeners then ran (review helper-104). One never
  // made is not made here: that cost every fork child ~1.5 ms (helper-105).
  if (madeStdin !== null) {
    madeStdin.removeAllListeners();
    const handle = madeStdin._handle;
    if (handle?.close !== undefined) {
      handle.readStop?.();
      handle.close();
      madeStdin._handle = null;
    } else if (madeStdin.autoClose !== undefined) {
      madeStdin.autoClose = false; // an fs stream: fd 0 must not be closed later, under the new one
      madeStdin.destroy?.();
    }
  }
  // fd 0 reads end-of-file, and the target's process.stdin is a fresh
  // stream on it, made when first used, that reads only once read from (as
  // Node's own), so a target that looks at it and reads later still sees
  // its end (review helper-104).
  native.quietFd(0, true);
  freshStdin(0);
}

/** process.stdin from now on: a stream on fd, made when first used, that reads only once read from (as Node's own). */
function freshStdin(fd: number): void {
  if (fd < 0) return;
  Object.defineProperty(process, 'stdin', {
    configurable: true,
    enumerable: true,
    get() {
      const stdin = new Socket({ fd, readable: true, writable: false, manualStart: true } as ConstructorParameters<typeof Socket>[0]);
      (stdin as unknown as { fd: number }).fd = fd;
      stdin.on('pause', () => (stdin as unknown as InheritedHandle)._handle?.readStop?.());
      Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, writable: false, value: stdin });
      return stdin;
    },
  });
}

/**
 * A dgram.Socket's UDP handle (null once closed), or undefined for anything
 * else. Found through its state object: its `_handle` getter is deprecated,
 * and reading it printed DEP0112 in every 'fork' child of a parent with a
 * UDP socket.
 */
function udpHandle(h: object): { fd?: number; recvStop?: () => number } | null | undefined {
  if (typeof (h as { addMembership?: unknown }).addMembership !== 'function') return undefined;
  for (const sym of Object.getOwnPropertySymbols(h)) {
    const state = (h as Record<symbol, unknown>)[sym];
    if (typeof state === 'object' && state !== null && 'bindState' in state && 'handle' in state) {
      return (state as { handle: { fd?: number; recvStop?: () => number } | null }).handle;
    }
  }
  return null;
}

function isTcp(h: InheritedHandle['_handle']): h is { close: () => void } {
  return h?.constructor?.name === 'TCP' && typeof h.close === 'function';
}

/** Whether stdout or stderr queues writes (a pipe its reader has not emptied). */
function stdioQueued(): boolean {
  return [process.stdout, process.stderr].some((s) => s.writableLength > 0);
}

/**
 * Resolves once what stdout and stderr queued is written (a fork child ends
 * in _exit, which would drop it; Python's child flushes its streams). A
 * reader that never reads keeps the child waiting, as a blocking write would.
 */
async function stdioDrained(): Promise<void> {
  for (const s of [process.stdout, process.stderr]) {
    if (s.writableLength === 0 || s.destroyed || s.errored) continue;
    await new Promise<void>((r) => {
      // Ended by the target (stdout.end()): its 'finish' comes once all is
      // written (a write after end() throws; review helper-83).
      if (s.writableEnded) {
        s.once('finish', () => r());
        s.once('error', () => r());
        s.once('close', () => r());
        return;
      }
      s.write('', () => r()); // written after everything queued before it; called with an error too (EPIPE)
    });
  }
}

/** A forked child's environment becomes exactly `env` (a spawned child gets it from spawn()). */
function replaceEnv(env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (!Object.hasOwn(env, k)) delete process.env[k];
  for (const [k, v] of Object.entries(env)) if (process.env[k] !== v) process.env[k] = v;
  restampAfterFork(); // the tracker's variables were just deleted or overwritten: this process's worker threads need them
}

/**
 * Entry for a child of the 'fork' start method, called right after fork()
 * inside the parent's start(). A synchronous function target runs here and
 * the child exits here; otherwise this returns and the caller throws
 * ForkChildExit to leave the parent's code, and the child exits as soon as
 * the target settles. Lifecycle listeners ('exit', 'uncaughtException'...)
 * are the parent's and are dropped; signal listeners are inherited, as in C.
 */
export function runInForkChild(
  target: ((...args: unknown[]) => unknown) | ChildTarget,
  handles: unknown[],
  pending: readonly PendingSlot[],
  info: { name: string; daemon: boolean; parentPid: number; parentName: string; env?: Record<string, string>; cwd?: string },
  watchdogFd: number,
): void {
  patchPid();
  forgetParent(true);
  dieWithParent(info.parentPid);
  // Signal listeners stay (removing one can spin forever, see
  // forkserver-main.ts); lifecycle listeners are the parent's business.
  for (const ev of ['exit', 'beforeExit', 'uncaughtException', 'unhandledRejection']) process.removeAllListeners(ev);
  // The parent's exit code is not the child's: a target that succeeds ends
  // 0 even if the parent had set one (it ends through process.exit(), which reads it: helper-62).
  process.exitCode = undefined;
  try {
    detachInheritedHandles();
  } catch (e) {
    // Before the child's own error handling: say what failed, and end (it died of a signal; review helper-105).
    report(info.name, e);
    native.exitNow(1);
  }
  if (watchdogFd >= 0) watchParentFd(watchdogFd);
  const { env, cwd, ...who } = info;
  const base = process.cwd(); // a module target's require base stays the parent's (see ChildSpec.base)
  enterChild({ ...who, startMethod: 'fork' });
  installErrorExit(info.name);
  try {
    if (cwd !== undefined && process.cwd() !== cwd) process.chdir(cwd);
    if (env !== undefined) replaceEnv(env);
  } catch (e) {
    report(info.name, e);
    native.exitNow(1);
  }
  // The args came as handles (Process#startFork): attached afresh, not taken
  // from the parent's objects this process inherited, whose references are
  // the parent's.
  let args: unknown[];
  try {
    args = attachPrivately(() => adoptingArgs(pending, () => rebuildingArgs(() => rebuild(handles)))) as unknown[];
  } catch (e) {
    report(info.name, e);
    native.exitNow(1);
  }
  const release = argsReleaser(() => args);
  installForkedExit(release);
  // Lines the parent had queued on a stdout/stderr pipe when it forked:
  // fork() copied that queue, and writing it out here would print them twice.
  const inherited = stdioQueued();
  // Typed as `never` on the binding, so that the checker follows the calls.
  const exit: (code: number) => never = (code) => {
    release();
    native.exitNow(code);
  };
  // Done: wait for its non-daemon children first, as Python's children do
  // (a grandchild was killed by its parent-death signal before it ran).
  // process.exit(), not exit(0): process.exitCode and the target's own
  // 'exit' listeners count, as under spawn and forkserver (process.reallyExit
  // ends in exit(): installForkedExit). Before, a fork child always ended 0.
  const done = async (): Promise<void> => {
    for (const p of activeChildren()) if (!p.daemon) await p.join().catch(() => {});
    // One turn of the loop: a rejection nothing handled (a promise the
    // target left floating) is reported after the microtasks that made it,
    // and exiting in the same one ended 0 with nothing said (helper-78).
    await new Promise((r) => setImmediate(r));
    // What this child queued on a pipe its reader has not emptied: _exit
    // dropped it (60-75% of a child's lines through `| cat`, exit code 0;
    // helper-78). Not when the parent's queue came along: that would print
    // the parent's lines again (review helper-79).
    if (!inherited) await stdioDrained();
    process.exit();
  };
  const fail: (e: unknown) => never = (e) => {
    // A grandchild this target forked, leaving our code: let it go on up
    // (sync) or go quiet (async); the grandchild's own call here ends it.
    if (isForkChildExit(e)) throw e;
    diesOfSignalAbort(e);
    report(info.name, e);
    exit(1);
  };
  const failAsync = (e: unknown): void => {
    if (!isForkChildExit(e)) fail(e);
  };
  if (typeof target === 'function') {
    let result: unknown;
    try {
      result = target(...args);
    } catch (e) {
      fail(e);
    }
    if (!isThenable(result) && activeChildren().length === 0) process.exit();
    const settled = isThenable(result) ? watchUnsettled(info.name) : noop;
    void Promise.resolve(result).then(() => {
      settled();
      return done();
    }, (e: unknown) => {
      settled();
      failAsync(e);
    });
    return;
  }
  const settled = watchUnsettled(info.name);
  void loadTask(target, base)
    .then((fn) => fn(...args), (e: unknown) => {
      // The module is the one that called start(), forked in its top-level
      // code: its evaluation, copied here, ended with this fork's unwinding,
      // and so did the import. The child did nothing and ended 0 (helper-71).
      if (isForkChildExit(e) && target.kind === 'module') {
        throw new ProcessError(
          `The target module ${target.url} is the module whose top-level code called start(): under the 'fork' start method the child cannot import it again ` +
            '(its evaluation was still running when it forked). Give a function target, call start() from a function run after the module has loaded, or use the forkserver or spawn start method.',
          { cause: e },
        );
      }
      throw e;
    })
    .then(() => {
      settled();
      return done();
    }, (e: unknown) => {
      settled();
      failAsync(e);
    });
}

/** Reads n bytes from fd, blocking; at EOF the process ends with `eofCode`. */
function readExactly(fd: number, n: number, eofCode: number): Buffer {
  const buf = Buffer.alloc(n);
  let off = 0;
  while (off < n) {
    let got: number;
    try {
      got = readSync(fd, buf, off, n - off, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN' || (e as NodeJS.ErrnoException).code === 'EINTR') continue;
      throw e;
    }
    if (got === 0) native.exitNow(eofCode); // the parent died before sending the spec
    off += got;
  }
  return buf;
}

function spawnMain(): void {
  dieWithParent(Number(process.env.MULTIPROC_PARENT_PID ?? 0));
  delete process.env.MULTIPROC_PARENT_PID;
  const len = readExactly(3, 4, 1).readUInt32LE(0);
  const spec = decodeSpec(readExactly(3, len, 1));
  watchParentFd(3);
  void runSpec(spec, false);
}

if (require.main === module) spawnMain();
