/**
 * The only module that loads the compiled addon (through node-gyp-build: a
 * prebuild in prebuilds/ when one matches, else build/Release). Everything
 * native is typed here; no other file touches a `.node` file.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NativeAddonError } from './errors';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import nodeGypBuild = require('node-gyp-build');

/** Result of a wait: woken (or spurious), timed out, or the word had changed. */
export const enum WaitResult {
  Woken = 0,
  TimedOut = 1,
  NotEqual = 2,
}

export interface ExitStatus {
  pid: number;
  code: number | null;
  signal: number | null;
}

export interface NativeBinding {
  shmCreate(name: string, size: number): ArrayBuffer;
  shmAttach(name: string): ArrayBuffer;
  shmUnlink(name: string): boolean;
  detach(buffer: ArrayBuffer): void;
  /** detach() plus munmap now (not at GC); only for buffers no wait can be pending on. */
  unmap(buffer: ArrayBuffer): void;

  futexWait(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): WaitResult;
  futexWake(buffer: ArrayBuffer, byteOffset: number, count: number): number;
  schedYield(): void;
  futexWaitAsync(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number, id: number, ref?: boolean): void;
  /** Ends a pending futexWaitAsync now (its result still comes to the callback); no-op once it ended. */
  futexWaitCancel(id: number): void;
  setWaitCallback(fn: (ids: number[], results: WaitResult[]) => void): void;
  waiterThreads(): number;
  /** A count shared by every thread of this process under `key`: adds delta (0 reads), returns the new count, never below 0; a fork()ed child starts with none. */
  processCount(key: string, delta: number): number;
  /** This process's identity (JSON), shared by its threads: stores it when given, else returns it (null if none was stored). */
  processIdentity(json?: string): string | null | undefined;
  /** 4 bytes holding this process's pid, refreshed in a fork()ed child: read it without a call. */
  pidCell(): ArrayBuffer;
  /** The calling thread's current-CPU word (Int32, kept current by the kernel), or null where there is none. */
  cpuWord(): ArrayBuffer | null;

  getpid(): number;
  getppid(): number;
  isAlive(pid: number): boolean;
  setParentDeathSignal(signal: number): boolean;
  /** The zygote: ignore SIGINT/SIGTERM/SIGHUP, saving the dispositions it had (see native/process.cc). */
  ignoreStopSignals?(): void;
  /** A child of the zygote: the dispositions saved by ignoreStopSignals(). */
  restoreStopSignals?(): void;
  exitNow(code: number): never;
  pipe(): [number, number];
  closeFd(fd: number): void;
  /** One end of a fresh non-blocking socket pair over fd: reads give end-of-file (eof) or find nothing, writes go nowhere; false if it could not be done. */
  quietFd(fd: number, eof: boolean): boolean;
  /** A new fd (3 or above) whose reads give end-of-file; -1 if it could not be made. */
  eofFd(): number;
  /** on: refs every unref'd TCP, UDP and pipe handle of this loop, so that process._getActiveHandles() lists them; off: unrefs those again. */
  refSockets?(on: boolean): void;
  setCloexec(fd: number, on: boolean): void;
  /** With a board: also publishes the pid, then seq, there (and wakes seq's waiters) before returning in the parent. */
  fork(board?: ArrayBuffer, pidOffset?: number, seqOffset?: number, seq?: number): number;
  waitpid(pid: number, block: boolean): ExitStatus | null;
  /** Like waitpid(pid, false) but leaves the child unreaped (waitid WNOWAIT). */
  peekExitStatus(pid: number): ExitStatus | null;
  /** uv_loop_alive() of this thread's loop. */
  loopAlive(ignoreIdle?: boolean): boolean;
  /** Starts moving node's code to anonymous huge pages on a thread of its own (once; see platform.h). */
  moveCodeToHugePages(): void;
  /** -2 never started, -1 running, else 0 or the errno it failed with. */
  moveCodeStatus(): number;
  /** Gives each V8 platform worker thread a task that blocks until unparked; true once all run it (see native/park.cc). */
  parkPlatformWorkers(timeoutMs: number): boolean;
  unparkPlatformWorkers(): void;
  /** Posts n empty tasks to the platform's worker queue, as V8's GC does (tests). */
  postPlatformTasks(n: number): boolean;
  /** [parked now, the platform's thread count] */
  parkedPlatformWorkers(): [number, number];
  /** In a fork child: whether V8's worker tasks run on the addon's own thread (see native/park.cc, RedirectWorkerTasks). */
  workerTasksRedirected(): boolean;
  /** Whether fork children of this build under this Node get that redirection (Node 20's V8; see park.cc kRedirectSupported). */
  readonly workerTaskRedirectSupported: boolean;
  /** NODE_MODULE_VERSION of the headers the addon was built with. */
  readonly nodeModuleVersion: number;

  /** A datagram socket bound to `name` (no file), polled by this thread's loop (unref'd); null where unsupported. */
  wakeSocketOpen(name: string, onIds: (ids: number[]) => void): FdWatcher | null;
  wakeSocketRef(socket: FdWatcher, on: boolean): void;
  /** Stops a watcher (wake socket, watchFd, dieOnEof) and closes its fd. */
  watcherClose(watcher: FdWatcher): void;
  /** Calls onReadable() whenever fd (made non-blocking, owned from now on) is readable or at EOF; it must read until EAGAIN. */
  watchFd(fd: number, onReadable: () => void, ref: boolean): FdWatcher;
  /** This process SIGKILLs itself when fd reaches EOF or fails (the parent watchdog); never keeps the loop alive. */
  dieOnEof(fd: number): FdWatcher;
  /** Sends the 4-byte id to the socket bound to `name`: 0 or -errno, never blocks. */
  wakeSend(name: string, id: number): number;
}

/** A native fd watcher (napi External): a wake socket, watchFd or dieOnEof; see native/fdwatch.cc. */
export interface FdWatcher {
  readonly __fdWatcher: unique symbol;
}

/** The package root: the nearest directory above us that holds binding.gyp. */
export function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const up = dirname(dir);
    if (up === dir) {
      // Not found only when this file was moved out of the package: bundled.
      throw new NativeAddonError(
        `multiproc: cannot find the package root (the directory with binding.gyp) above ${__dirname}. ` +
          'multiproc cannot be bundled: its native addon and the scripts its child processes run must stay in ' +
          "node_modules/multiproc. Mark it external in your bundler (esbuild: --external:multiproc; webpack: externals: { multiproc: 'commonjs multiproc' }; " +
          "Rollup/Vite: external: ['multiproc']; Next.js: serverExternalPackages: ['multiproc']) and ship node_modules/multiproc with the bundle.",
      );
    }
    dir = up;
  }
  return dir;
}

const kRebuild =
  'Build it with `npm rebuild multiproc` (pnpm, which skips dependencies\' build scripts unless allowed: `pnpm approve-builds`, ' +
  'then `pnpm rebuild multiproc`). Building needs python3, make and a C++ compiler ' +
  '(Debian/Ubuntu: apt install python3 make g++; macOS: xcode-select --install).';

/** node-gyp-build, with its errors told in terms of what to do. */
function loadBinding(): NativeBinding {
  const root = packageRoot();
  try {
    return nodeGypBuild(root) as NativeBinding;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (message.startsWith('No native build was found')) {
      // Install scripts skipped (npm --ignore-scripts, pnpm's default) and no prebuild for this Node.
      throw new NativeAddonError(
        `multiproc's native addon was never built in ${root}, and no prebuild matches Node ${process.version} on ` +
          `${process.platform}-${process.arch} (were install scripts skipped?). ${kRebuild}`,
        { cause: e },
      );
    }
    if ((e as NodeJS.ErrnoException | null)?.code === 'ERR_DLOPEN_FAILED') {
      // A build for another platform or architecture (node_modules copied across machines, a musl/glibc mix).
      throw new NativeAddonError(`multiproc's native addon in ${root} could not be loaded: ${message.trim()}. Rebuild it on this machine: ${kRebuild}`, { cause: e });
    }
    throw e;
  }
}

export const native: NativeBinding = loadBinding();
