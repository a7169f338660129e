/**
 * Unlinks shared memory segments that their owners could not unlink
 * themselves (a crash, a SIGKILL, an object never closed).
 *
 * As in CPython, one tracker process serves a whole process tree: the first
 * process that creates a segment starts it (lib/entry/tracker-main.ts) with a
 * pipe on its stdin, and every child started by this library inherits the
 * pipe's write end (its number travels in MULTIPROC_TRACKER_FD, checked
 * against the pipe's inode in MULTIPROC_TRACKER_INO; see ownValue for who
 * else may read them). Creators
 * write `REGISTER:<name>:<type>\n` / `UNREGISTER:<name>:<type>\n` lines (a
 * Blob's REGISTER also names its creator, `:<pid>:<startStamp>`, whose death
 * before it published the Blob makes the tracker unlink it at once: see
 * tracker-main.ts), each well under PIPE_BUF so writes from many processes
 * never interleave, with a blocking write so that a segment is registered
 * before create() returns.
 * When the last write end closes, i.e. every process of the tree is gone,
 * the tracker unlinks whatever is still registered and exits. A tracker
 * killed while the tree runs is replaced by the root (see send).
 *
 * Unlike CPython's tracker (cpython#82300), attaching never registers: only
 * the creator's tree owns a segment, so a foreign process that attached one
 * can never cause it to be unlinked under its owner.
 */
import { spawn } from 'node:child_process';
import { existsSync, fstatSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { libDir, startCwd } from './paths';
import { native } from './native';

export const kTrackerFdEnv = 'MULTIPROC_TRACKER_FD';
/** The tracker's pid, passed to children with its fd: recorded in every segment header (see `multiproc doctor`). */
export const kTrackerPidEnv = 'MULTIPROC_TRACKER_PID';

/** Segment types the tracker knows (it unlinks both the same way). */
export type TrackedType = 'shared_memory' | 'object';

/** The inode of the tracker's pipe, passed with its fd: the number alone may name another pipe here. */
export const kTrackerInoEnv = 'MULTIPROC_TRACKER_INO';

let trackerFd = -1;
let trackerPid = 0;
/** The pid that started the tracker (the root of the tree; a 'fork' child copies this variable, not the role). */
let startedBy = 0;
/**
 * What the root registered and has not unregistered, told again to a
 * tracker started anew (see send). A segment the root made and another
 * process unlinked (a big item a consumer read) stays here until a prune
 * finds it gone (see remember).
 */
let registered: Map<string, { type: TrackedType; count: number }> | null = null;
let pruneAt = 4096;
let warnedGone = false;
let quietLoss = false;

/** A forkserver spare's rehearsal (bootstrap.ts runSpare) makes and drops segments of its own: a lost tracker is not worth a line there. */
export function quietTrackerLoss(quiet: boolean): void {
  quietLoss = quiet;
}

// The variables are meant for the process they were given to, and for its
// worker threads (which share its fds and must share its tracker: a tracker
// of their own would unlink their segments when this process exits). A
// program this process starts by other means (child_process) inherits them
// too, but not the fd: it would write its registrations into whatever its
// own fd of that number is (Node's internal pipes are pipes too). So they
// are re-stamped with this process's pid ("5@1234"): a value stamped with
// another pid is ignored. Our own children get plain values explicitly
// (see trackerFdForChild).
const kTrackerVars = [kTrackerFdEnv, kTrackerPidEnv, kTrackerInoEnv] as const;

function ownValue(name: string): string | undefined {
  const v = process.env[name];
  if (v === undefined) return undefined;
  const at = v.lastIndexOf('@');
  if (at < 0) return v; // given to this process by the one that started it
  return Number(v.slice(at + 1)) === process.pid ? v.slice(0, at) : undefined;
}

const fromParent = { fd: ownValue(kTrackerFdEnv), pid: ownValue(kTrackerPidEnv), ino: ownValue(kTrackerInoEnv) };

/** Leaves the tracker's variables in process.env for this process's worker threads only (see above). */
function stampForThreads(values: readonly (string | undefined)[]): void {
  kTrackerVars.forEach((name, i) => {
    const v = values[i];
    if (v === undefined || v === '') delete process.env[name];
    else process.env[name] = `${v}@${process.pid}`;
  });
}
stampForThreads([fromParent.fd, fromParent.pid, fromParent.ino]);

/** In a fork child (a new pid, the same fds and tracker): the variables again, for its own worker threads. */
export function restampAfterFork(): void {
  if (trackerFd >= 0) stampForThreads([String(trackerFd), String(trackerPid), String(trackerPipeInode())]);
  else stampForThreads([fromParent.fd, fromParent.pid, fromParent.ino]);
}

/** The tracker fd number this process was handed by its parent, or -1 (for tests and diagnostics). */
export function inheritedFd(): number {
  const v = fromParent.fd;
  if (v === undefined || v === '') return -1;
  const fd = Number(v);
  return Number.isInteger(fd) && fd > 2 ? fd : -1;
}

/** Starts the tracker if this process has none; returns the write fd. */
export function ensureRunning(): number {
  if (trackerFd >= 0) return trackerFd;
  const inherited = inheritedFd();
  if (inherited >= 0) {
    trackerFd = inherited;
    // Keep it out of unrelated exec'd programs; our own children get it explicitly.
    try {
      const st = fstatSync(trackerFd);
      if (!st.isFIFO()) throw new Error('not a pipe');
      if (fromParent.ino !== undefined && fromParent.ino !== '' && Number(fromParent.ino) !== st.ino >>> 0) throw new Error('another pipe');
      native.setCloexec(trackerFd, true);
      const pid = Number(fromParent.pid);
      trackerPid = Number.isInteger(pid) && pid > 0 ? pid : 0;
      return trackerFd;
    } catch {
      trackerFd = -1; // stale variable from an unrelated parent: start our own
    }
  }
  const [r, w] = native.pipe();
  // detached: its own process group, so a signal sent to ours (Ctrl-C, a
  // supervisor's SIGTERM to the group) cannot kill it before it has cleaned up.
  const child = spawn(process.execPath, [join(libDir, 'entry', 'tracker-main.js')], {
    stdio: [r, 'ignore', 'inherit'],
    env: process.env,
    // Where NODE_OPTIONS' relative --require/--import resolve as they did for this process (paths.ts).
    cwd: startCwd(process.cwd()),
    detached: true,
  });
  native.closeFd(r);
  child.unref();
  child.on('error', () => {});
  trackerPid = child.pid ?? 0;
  trackerFd = w;
  startedBy = native.getpid();
  registered ??= new Map();
  pipeInode = -1;
  stampForThreads([String(w), String(trackerPid), String(trackerPipeInode())]);
  return w;
}

function send(line: string): void {
  if (write(ensureRunning(), line)) return;
  // The tracker is gone (SIGKILLed: it never exits while a write end is
  // open). Before, nothing was ever tracked again: every segment made from
  // then on leaked at a crash, and so did those made before (helper-61:
  // 202 of 101 Values' segments after one run). As CPython's
  // ensure_running() does, the process that started it starts another and
  // tells it everything it has registered. A child cannot: a tracker of its
  // own would unlink its segments when it exits, under the processes that
  // still use them, so it says once that its segments are not tracked.
  if (restartIfGone()) {
    write(trackerFd, line);
    return;
  }
  if (!warnedGone && !quietLoss) {
    warnedGone = true;
    process.stderr.write(`multiproc: the resource tracker (pid ${trackerPid}) is gone: segments made or held by this process (pid ${process.pid}) are no longer unlinked after a crash\n`);
  }
}

/**
 * In the root, a tracker found gone is replaced and told what the root
 * registered (true). The old pipe's fd stays open, not closed: this
 * process's worker threads still write to that number, which a later open()
 * would reuse (their registrations went into a user's file: helper-62);
 * writes to it just fail (EPIPE).
 */
function restartIfGone(): boolean {
  if (startedBy !== native.getpid()) return false;
  trackerFd = -1;
  const fd = ensureRunning();
  for (const [name, { type, count }] of registered ?? []) for (let i = 0; i < count; i++) write(fd, `REGISTER:${name}:${type}\n`);
  for (const cb of restartListeners) cb();
  return true;
}

const restartListeners: (() => void)[] = [];

/** Called after the root started a new tracker: holders of the old pipe (an idle forkserver) may be replaced. */
export function onTrackerRestart(cb: () => void): void {
  restartListeners.push(cb);
}

/** Writes the whole line; false if the tracker is gone. */
function write(fd: number, line: string): boolean {
  const buf = Buffer.from(line);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EINTR') return false;
    }
  }
  return true;
}

function checkName(name: string): void {
  // An OS name: '/' and up to NAME_MAX (255) characters.
  if (name.includes('\n') || name.includes(':') || name.length > 256) {
    throw new RangeError(`Segment name ${JSON.stringify(name)} cannot be tracked (no ':' or newlines, at most 255 characters after the '/')`);
  }
}

/**
 * `creator`: the segment's only reference stays in the creating process
 * (pid, startStamp) until it publishes it (a Blob: see layout.ts
 * kBlobPending). The tracker watches that process, and unlinks the segment
 * once it is gone if the segment's header still says pending.
 */
export function register(name: string, type: TrackedType, creator?: { pid: number; stamp: number }): void {
  checkName(name);
  send(creator === undefined ? `REGISTER:${name}:${type}\n` : `REGISTER:${name}:${type}:${creator.pid}:${creator.stamp}\n`);
  remember(name, type);
}

/**
 * A child of this process died by a signal: the tracker looks for
 * references the dead held in the tree's segments and gives them back
 * (holders.ts), so that a segment everyone else had already closed goes
 * now, not when the tree ends. The releases of the living do the same for
 * the segments they close later.
 */
export function holderDied(): void {
  if (trackerFd < 0 && inheritedFd() < 0) return; // no tracker: this process never made or held a segment
  send('SWEEP:holders\n');
}

export function unregister(name: string, type: TrackedType): void {
  checkName(name);
  // After the send: a send that finds the tracker gone re-registers the map
  // first. Counted, as the tracker counts: a failed create (EEXIST)
  // registers and unregisters a name an earlier create of ours may hold.
  send(`UNREGISTER:${name}:${type}\n`);
  const entry = registered?.get(name);
  if (entry !== undefined && --entry.count <= 0) registered!.delete(name);
}

/** The root keeps its registrations (see `registered`), pruning the ones unlinked elsewhere as they pile up. */
function remember(name: string, type: TrackedType): void {
  if (registered === null || startedBy !== native.getpid()) return;
  const entry = registered.get(name);
  if (entry !== undefined) entry.count++;
  else registered.set(name, { type, count: 1 });
  if (registered.size < pruneAt) return;
  if (process.platform === 'linux') {
    for (const n of registered.keys()) if (!existsSync(`/dev/shm/${n}`)) registered.delete(n);
    pruneAt = Math.max(4096, registered.size * 2);
  } else {
    registered = null; // no listing to prune by (macOS): a new tracker then learns only what comes after
  }
}

/**
 * The fd a child must inherit to share this tree's tracker; the child must
 * find its number in MULTIPROC_TRACKER_FD (popen code sets both).
 */
export function trackerFdForChild(): number {
  checkTracker();
  return ensureRunning();
}

/**
 * In the root: a tracker found dead is replaced now. A child started after
 * the tracker died and before the root's next registration was handed the
 * dead pipe (helper-62), and an idle zygote kept it (helper-63): starts look first.
 */
export function checkTracker(): void {
  if (trackerFd >= 0 && trackerPid > 0 && startedBy === native.getpid() && !native.isAlive(trackerPid)) restartIfGone();
}

/** pid of this process tree's tracker (0 if unknown: started by an older build). Starts the tracker if needed. */
export function trackerProcessId(): number {
  ensureRunning();
  return trackerPid;
}

let pipeInode = -1;

/**
 * Inode of the tracker's pipe (0 if unknown). Every live process of the tree
 * holds its write end (and the tracker its read end), so a leftover segment
 * whose header names it still has an owner while anyone holds the pipe.
 */
export function trackerPipeInode(): number {
  const fd = ensureRunning();
  if (pipeInode < 0) {
    try {
      pipeInode = fstatSync(fd).ino >>> 0;
    } catch {
      pipeInode = 0;
    }
  }
  return pipeInode;
}
