/**
 * spawn: a fresh `node` running lib/entry/bootstrap.js, with the parent's
 * execArgv (so `--import tsx` and similar carry over).
 *
 * Child fds:
 *   0      /dev/null (as Python: children do not fight over the terminal)
 *   1, 2   the parent's stdout/stderr
 *   3      a socket to the parent: the parent writes [u32 length][ChildSpec]
 *          and then never writes or closes it again, so EOF on it means the
 *          parent is gone (the portable parent-death watchdog)
 *   4      the resource tracker's pipe (MULTIPROC_TRACKER_FD=4), so the whole
 *          tree shares one tracker
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { libDir, startCwd } from '../paths';
import type { Writable } from 'node:stream';
import { ProcessError } from '../errors';
import { native } from '../native';
import { kTrackerFdEnv, kTrackerInoEnv, kTrackerPidEnv, trackerFdForChild, trackerPipeInode, trackerProcessId } from '../resource-tracker';
import { BasePopen, encodeSpec, exitCodeOf, sleepSync, type ChildSpec } from './popen';

export const kSpecFd = 3;
const kTrackerFd = 4;

// Flags of the parent that must not reach a child: they name what to run
// (the child runs our bootstrap instead), or a debugger port two processes cannot share.
const kDropWithValue = new Set(['-e', '--eval', '-p', '--print', '-pe', '-ep', '--input-type', '--inspect-port', '--debug-port', '--inspect-publish-uid']);
const kDrop = /^(-i|--interactive|-c|--check|--test|--test-.*|--watch|--watch-path=.*|--watch-preserve-output|--inspect(-brk|-port|-publish-uid)?(=.*)?|--debug-port(=.*)?|--eval=.*|--print=.*|--input-type=.*)$/;

/** What the forkserver puts before the parent's execArgv for its zygote: see forkserver.ts. */
export const kZygoteFlags: readonly string[] = ['--single-threaded', '--v8-pool-size=1'];
let zygoteFlags = 0;

/**
 * Called in the zygote: its execArgv begins with kZygoteFlags, not the
 * user's, and so does every child it forks. They passed on to what those
 * children started in turn (a spawn grandchild, a spawn pool's workers: no
 * V8 worker threads, and 'fork' allowed; review helper-102).
 */
export function inZygote(): void {
  zygoteFlags = kZygoteFlags.length;
}

/** execArgv for children: the parent's (loaders such as `--import tsx` carry over), minus the flags above. */
export function childExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = zygoteFlags; i < argv.length; i++) {
    const a = argv[i];
    if (kDropWithValue.has(a)) {
      i++; // and its value
      continue;
    }
    if (kDrop.test(a)) continue;
    out.push(a);
  }
  return out;
}

/** Specs up to this size are written through the socket asynchronously (they fit its buffer). */
const kAsyncSpecBytes = 64 * 1024;

/** Writes all of buf to a non-blocking fd, napping while it is full; stops if the reader is gone. */
function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  let nap = 0.25;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
      nap = 0.25;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EINTR') return; // EPIPE: the child died; its 'exit' reports it
      sleepSync(nap);
      nap = Math.min(nap * 2, 10);
    }
  }
}

/**
 * Why a spawn failed, as far as can be told at once: Node reports the errno
 * only on the next tick, after start() has thrown. Out of file descriptors
 * (EMFILE, a low `ulimit -n`) is the common case, and another open() says so.
 */
function spawnFailureHint(): string {
  // A spawn here takes up to ~8 descriptors at once (stdio pipes, the spec
  // pipe, the tracker's, libuv's exec-error pipe): probe for as many.
  const fds: number[] = [];
  try {
    for (let i = 0; i < 8; i++) fds.push(openSync('/dev/null', 'r'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return `: this process is out of file descriptors (${code} with ${fds.length} more open); close some, or raise the limit (ulimit -n)`;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  return ' (too many processes for this user, `ulimit -u`? Node reports the reason only after this error, as an \'error\' event)';
}

export class SpawnPopen extends BasePopen {
  readonly method = 'spawn' as const;
  readonly pid: number;
  #child: ChildProcess;
  #channel: Writable & { ref?(): void; unref?(): void };

  constructor(spec: ChildSpec) {
    super();
    const bootstrap = join(libDir, 'entry', 'bootstrap.js');
    const child = spawnChild(process.execPath, [...childExecArgv(), bootstrap], {
      stdio: ['ignore', 'inherit', 'inherit', 'pipe', trackerFdForChild()],
      env: { ...(spec.env ?? process.env), [kTrackerFdEnv]: String(kTrackerFd), [kTrackerPidEnv]: String(trackerProcessId()), [kTrackerInoEnv]: String(trackerPipeInode()), MULTIPROC_PARENT_PID: String(process.pid) },
      // Not spec.cwd: the child's execArgv and NODE_OPTIONS resolve from here (paths.ts); the bootstrap changes to spec.cwd.
      cwd: startCwd(spec.cwd),
    });
    if (child.pid === undefined) {
      // Node emits the reason as 'error' on the next tick: unheard, it would crash the process after our throw.
      child.on('error', () => {});
      throw new ProcessError(`Could not spawn ${process.execPath} for ${spec.name}${spawnFailureHint()}`);
    }
    this.pid = child.pid;
    this.#child = child;
    child.on('error', () => {}); // reported through 'exit'
    child.on('exit', (code, signal) => this.finish(exitCodeOf(code, signal)));
    const channel = child.stdio[kSpecFd] as Writable & { ref?(): void; unref?(): void };
    this.#channel = channel;
    channel.on('error', () => {}); // EPIPE when the child died early: 'exit' reports it
    const body = encodeSpec(spec);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length);
    const frame = Buffer.concat([head, body]);
    // A spec larger than the socket's buffer would be written piece by piece
    // as the event loop turns: a joinSync() (or the exit hook's) then waited
    // for a child that waited for the rest of its spec, for good. So a big
    // one is written here, blocking start() until the child has read it.
    const fd = (channel as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (frame.length > kAsyncSpecBytes && typeof fd === 'number' && fd >= 0) writeAllSync(fd, frame);
    else channel.write(frame);
    // Keep the socket open (it is the child's watchdog) but never read it.
  }

  protected check(): void {
    // libuv reaps on its next turn; a status visible now is final already.
    let st;
    try {
      st = native.peekExitStatus(this.pid);
    } catch {
      // ECHILD: libuv reaped it already; ChildProcess holds the status.
      const c = this.#child;
      st = c.exitCode !== null || c.signalCode !== null ? { code: c.exitCode, signal: c.signalCode } : null;
    }
    if (st !== null) this.finish(exitCodeOf(st.code, st.signal));
  }

  setRef(ref: boolean): void {
    if (ref) {
      this.#child.ref();
      this.#channel.ref?.();
    } else {
      this.#child.unref();
      this.#channel.unref?.();
    }
  }

  override close(): void {
    this.#channel.destroy();
  }
}
