/**
 * The forkserver zygote. Started by lib/popen/forkserver.ts as
 * `node --single-threaded <execArgv> forkserver-main.js`: with a single V8
 * thread there are no platform worker threads for a fork child to lose, the
 * configuration NATIVE-NOTES.md measured as robust (400/400 GC-heavy
 * children). It imports the preload modules once, then forks one child per
 * request; children start copy-on-write with the library already loaded.
 *
 * fds: 3 = requests from the parent ([u32 seq][u32 len][ChildSpec] frames;
 * EOF = the parent is gone, so we exit), 4 = doorbell socket (one byte after
 * each batch of exit records), 5 = the resource tracker's pipe.
 * The board (shared memory, layout in lib/popen/forkserver.ts) carries the
 * reply (pid) of each request and a ring of exit records.
 */
// First: the library's modules imported below compile eagerly (see eager-compile.ts).
import { endEagerCompile } from './eager-compile';
import { readSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { native, type FdWatcher } from '../native';
import { mayForkSelf, waitSync, wake } from '../wait';
import {
  kBellRung, kBoardEnv, kCancelSeq, kPreloadEnv, kReady, kSparesEnv, kReplyPid, kReplySeq, kRingCapacity, kRingRead, kRingRecordInts, kRingStart, kRingWrite,
} from '../popen/forkserver-layout';
import { join } from 'node:path';
import { dieWithParent, runForked, runSpare, warmUp } from './bootstrap';
import { parkWorkers, unparkWorkers } from '../popen/park';
import { inZygote } from '../popen/spawn';

endEagerCompile();

// The zygote's --single-threaded is for its own forks: its children's puts and gets need no guard against a fork of theirs (wait.ts canFork).
mayForkSelf(false);
inZygote();

const kRequestFd = 3;
const kDoorbellFd = 4;
/** Specs up to this size go through a spare's pipe; a write never blocks below the pipe's 64 KiB buffer. */
const kMaxSpareSpec = 60 * 1024;

const parentPid = Number(process.env.MULTIPROC_PARENT_PID ?? 0);
dieWithParent(parentPid);
delete process.env.MULTIPROC_PARENT_PID;
const zygotePid = process.pid;

const boardName = process.env[kBoardEnv] ?? '';
delete process.env[kBoardEnv];
const buffer = native.shmAttach(boardName);
const board = new Int32Array(buffer);

// Our children's watchdog: only we hold the write end (each child closes its
// copy right after fork), so EOF on the read end means this zygote is gone.
const [watchRead, watchWrite] = native.pipe();

function pushExit(pid: number, code: number | null, signal: number | null): void {
  let w = Atomics.load(board, kRingWrite);
  for (;;) {
    const r = Atomics.load(board, kRingRead);
    if (w - r < kRingCapacity) break;
    waitSync(buffer, kRingRead * 4, r, 1000); // the parent drains and wakes us
  }
  const at = kRingStart + (w % kRingCapacity) * kRingRecordInts;
  board[at] = pid;
  board[at + 1] = code ?? -1;
  board[at + 2] = signal ?? 0;
  Atomics.store(board, kRingWrite, ++w);
}

/** The doorbell's byte (reap). */
const bellByte = Buffer.from([1]);

function reap(): void {
  if (isChild) return; // a fork child keeps this listener, see forkOne
  let any = false;
  for (;;) {
    let st;
    try {
      st = native.waitpid(-1, false);
    } catch {
      break; // ECHILD: no children left
    }
    if (st === null) break;
    if (retired.delete(st.pid)) continue; // a spare we sent away: the parent never heard of it
    const spare = spares.findIndex((x) => x.pid === st.pid);
    if (spare >= 0) {
      // Never handed out: the parent never heard of this pid.
      native.closeFd(spares[spare].specFd);
      spares.splice(spare, 1);
      scheduleRefill();
      continue;
    }
    running.delete(st.pid);
    pushExit(st.pid, st.code, st.signal);
    any = true;
  }
  if (any) {
    wake(buffer, kRingWrite * 4);
    // One unread byte at most (see kBellRung): the socket never fills.
    if (Atomics.compareExchange(board, kBellRung, 0, 1) === 0) {
      try {
        writeSync(kDoorbellFd, bellByte);
      } catch {
        // parent gone: we exit on EOF anyway
      }
    }
    // After the parent is told: a Pool's terminate() waits for these exits.
    scheduleRefill();
  }
}
let isChild = false;
let requests: FdWatcher;
process.on('SIGCHLD', reap);


/**
 * Spares: children forked ahead of demand that have done everything a child
 * does before it knows its task (dropping the zygote's fds and sockets,
 * parent-death wiring, the page faults of that path) and now block reading
 * their spec from a pipe only the zygote writes. On this VM a fork and a
 * child's first steps are dominated by page-table work (~8 ms in the zygote,
 * ~10 ms in the child), so handing a request to a spare takes both off the
 * path of start(). A spare also rehearses a child's code paths (warmUp) before
 * it waits. The zygote refills after a quiet spell (see scheduleRefill); a
 * burst beyond the spares forks on demand.
 */
interface Spare {
  pid: number;
  specFd: number;
  /** Forked after node's code had moved to anonymous pages (see main). */
  codeMoved: boolean;
}
const spares: Spare[] = [];
/** Spares closed before use (forked before the code move); their exits are not reported. */
const retired = new Set<number>();
let codeMoved = false;
const targetSpares = Math.max(0, Math.min(64, Number(process.env[kSparesEnv] ?? 0) | 0));
/** After a spare could not be made: none is tried before this (performance.now()), and the failure is told once. */
let sparesPausedUntil = 0;
let spareFailureTold = false;
const kSparePauseMs = 10_000;
delete process.env[kSparesEnv];
let refillTimer: NodeJS.Timeout | undefined;
const kRefillDelayMs = 50;
/**
 * Between two spares of one refill: short, once the quiet spell has passed.
 * At 50 ms (the quiet spell again) two spares took 100 ms and more, and a
 * Pool(2) made ~100 ms after the last one found the second still missing
 * (create + first result + terminate, medians of 25: 12.1-12.7 ms, 9.7-10.6
 * with 5 ms).
 */
const kNextSpareMs = 5;
/** Children handed out and not yet reaped. */
const running = new Set<number>();
const cpus = availableParallelism();

/** The fork child's side of every fork: drop what belongs to the zygote. */
function becomeChild(): void {
  isChild = true;
  native.restoreStopSignals?.(); // the zygote's own shield is not the child's (see main())
  native.watcherClose(requests);
  native.closeFd(kDoorbellFd);
  native.closeFd(watchWrite);
  for (const s of spares) native.closeFd(s.specFd);
  spares.length = 0;
  // The SIGCHLD listener stays (reap() is a no-op here): closing a uv
  // signal handle whose signal was caught but not yet dispatched when we
  // forked never finishes in the child (libuv re-queues it forever, and
  // uv_loop_fork dropped the pending byte): a 100% CPU spin we measured in
  // ~3% of children under load.
  native.detach(buffer);
}

/** With a seq, the pid is published as the reply to that request from inside the fork call (see native fork). */
function fork(seq?: number): number {
  // V8's worker threads are held for the fork only (popen/park.ts): parked
  // for good, they would leave the tasks V8 posts meanwhile unrun, counted
  // in progress in every later child.
  parkWorkers(100);
  try {
    return seq === undefined ? native.fork() : native.fork(buffer, kReplyPid * 4, kReplySeq * 4, seq);
  } catch (e) {
    process.stderr.write(`multiproc forkserver: fork failed: ${(e as Error).message}\n`);
    return -1;
  } finally {
    // Also after a park that timed out: its tasks, taken late, must not hold
    // the workers (in the child, a no-op: native MarkForkChild).
    unparkWorkers();
  }
}

function reply(seq: number, pid: number): void {
  if (pid > 0) running.add(pid);
  Atomics.store(board, kReplyPid, pid);
  Atomics.store(board, kReplySeq, seq);
  wake(buffer, kReplySeq * 4);
}

/**
 * A request the parent gave up on while this process was stopped (a pool
 * worker's start: see Zygote.watchStopped): answered "no child", not forked
 * (the worker would find its pipe gone and fail with a stack).
 */
function dropCancelled(seq: number): boolean {
  if (Atomics.load(board, kCancelSeq) !== (seq | 0)) return false;
  reply(seq, -1);
  return true;
}

function forkOne(seq: number, spec: Uint8Array): void {
  const pid = fork(seq);
  if (pid === 0) {
    becomeChild();
    runForked(spec, zygotePid, watchRead);
    return;
  }
  if (pid > 0) running.add(pid);
  else reply(seq, pid);
}

/**
 * Hands spec to a spare; false if none could take it. The reply goes out
 * before the spec: writing the spec wakes the spare, and the scheduler may
 * run it on this CPU ahead of us, for its whole set-up (a trace showed the
 * reply ~4 ms late behind it). A spare found dead here is skipped; one that
 * dies between that check and the write was already given to the
 * requester, which then sees it exit like any child (reap reports it).
 */
function handToSpare(seq: number, spec: Uint8Array): boolean {
  if (spec.length > kMaxSpareSpec) return false;
  while (spares.length > 0) {
    const s = spares.shift()!;
    let alive: boolean;
    try {
      alive = native.waitpid(s.pid, false) === null; // reaps it if it died
    } catch {
      alive = false; // ECHILD: gone already
    }
    if (!alive) {
      native.closeFd(s.specFd);
      continue;
    }
    reply(seq, s.pid);
    const frame = Buffer.allocUnsafe(4 + spec.length);
    frame.writeUInt32LE(spec.length, 0);
    frame.set(spec, 4);
    try {
      writeSync(s.specFd, frame);
    } catch {
      // it died (EPIPE) after the check: reap() reports its exit to the requester
    }
    native.closeFd(s.specFd);
    return true;
  }
  return false;
}

function forkSpare(): void {
  let r: number;
  let w: number;
  try {
    [r, w] = native.pipe();
  } catch (e) {
    // Out of file descriptors (ulimit -n): uncaught, this ended the zygote,
    // and every forkserver child with it (helper-61). Spares are only a
    // head start: go on without them for a while, then try again.
    if (!spareFailureTold) process.stderr.write(`multiproc forkserver: cannot make a spare child (${(e as Error).message}); going on without spares for now\n`);
    pauseSpares();
    return;
  }
  const pid = fork();
  if (pid === 0) {
    native.closeFd(w);
    becomeChild();
    runSpare(r, zygotePid, watchRead);
    return;
  }
  native.closeFd(r);
  if (pid < 0) {
    native.closeFd(w);
    pauseSpares(); // (fork() said why) not again every few ms
    return;
  }
  spares.push({ pid, specFd: w, codeMoved });
}

/**
 * Spares are made with spare CPU only: a fork and a spare's set-up cost tens
 * of ms of CPU here, which would slow down the children just started (a
 * Pool's workers) if every CPU is busy with them. So while as many children
 * run as there are CPUs, refilling waits for one of them to exit.
 */
function scheduleRefill(delayMs = kRefillDelayMs): void {
  if (isChild || spares.length >= targetSpares || running.size >= cpus) return;
  // Only after a quiet spell: requests come in bursts (a Pool starts its
  // workers back to back, ~1 ms apart) and a fork holds the zygote for
  // several ms (a refill between two requests of a burst made the second wait
  // 25 ms); and a spare costs more CPU than a plain fork child (its rehearsal),
  // so under a steady stream of starts (a tight start/join loop) refilling
  // only competes with the children for the CPUs: measured 41 ms per
  // start+join with a 10 ms delay vs 28 ms without spares. Each request pushes
  // the refill back; then one fork per timer (kNextSpareMs apart).
  if (refillTimer !== undefined) clearTimeout(refillTimer);
  refillTimer = setTimeout(refill, delayMs);
}

function pauseSpares(): void {
  spareFailureTold = true;
  sparesPausedUntil = performance.now() + kSparePauseMs;
}

/** One spare per timer, so a request that arrives meanwhile waits for one fork at most. */
function refill(): void {
  refillTimer = undefined;
  if (isChild || queue.length > 0 || spares.length >= targetSpares || running.size >= cpus) return;
  const wait = sparesPausedUntil - performance.now();
  if (wait > 0) {
    scheduleRefill(wait);
    return;
  }
  forkSpare();
  scheduleRefill(kNextSpareMs);
}

// Bytes read and not yet parsed: chunks joined only once a whole request is
// there (joining at every 64 KiB read made a start() with 20 MB of args take
// half a minute: quadratic).
let pending: Buffer[] = [];
let pendingBytes = 0;

function joinPending(): Buffer {
  const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
  pending = [all];
  return all;
}
const queue: { seq: number; spec: Uint8Array }[] = [];
let scheduled = false;

const readBuf = Buffer.allocUnsafe(64 * 1024);

function readRequests(): void {
  for (;;) {
    let n: number;
    try {
      n = readSync(kRequestFd, readBuf, 0, readBuf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
      if (code === 'EINTR') continue;
      process.exit(0); // the parent is gone
    }
    if (n === 0) process.exit(0); // EOF: the parent is gone
    onData(Buffer.from(readBuf.subarray(0, n)));
  }
}

function onData(chunk: Buffer): void {
  pending.push(chunk);
  pendingBytes += chunk.length;
  while (pendingBytes >= 8) {
    const head = pending[0]!.length >= 8 ? pending[0]! : joinPending();
    const seq = head.readUInt32LE(0);
    const len = head.readUInt32LE(4);
    if (pendingBytes < 8 + len) break;
    const all = joinPending();
    queue.push({ seq, spec: all.subarray(8, 8 + len) });
    const rest = all.subarray(8 + len);
    pending = rest.length === 0 ? [] : [rest];
    pendingBytes = rest.length;
  }
  // A spare is handed its request right here; only forks wait for the check
  // phase (see forkQueued). One loop turn less on the path of start(), and
  // fewer of the zygote's pages written, each a copy-on-write fault since
  // its spares share them (~30 µs each here).
  let handed = false;
  while (queue.length > 0 && !scheduled && (dropCancelled(queue[0]!.seq) || handToSpare(queue[0]!.seq, queue[0]!.spec))) {
    queue.shift();
    handed = true;
  }
  if (handed) scheduleRefill();
  if (queue.length > 0 && !scheduled) {
    scheduled = true;
    setImmediate(forkQueued);
  }
}

/*
 * Forks happen here, in the check phase, not inside the read callback that
 * delivered the request: that callback runs in the middle of uv__io_poll's
 * epoll batch, whose locals still name the epoll fd that uv_loop_fork
 * replaces in the child. A precaution (the spin we did measure came from
 * closing a signal handle, see forkOne).
 */
function forkQueued(): void {
  scheduled = false;
  while (queue.length > 0 && !isChild) {
    const { seq, spec } = queue.shift()!;
    if (!dropCancelled(seq) && !handToSpare(seq, spec)) forkOne(seq, spec);
  }
  scheduleRefill();
}

/**
 * Once the code has moved, spares forked before are replaced: they would
 * fault it in like any child (an EOF on its spec pipe ends a spare quietly).
 */
function awaitCodeMove(): void {
  const timer = setInterval(() => {
    if (isChild) return clearInterval(timer);
    const status = native.moveCodeStatus();
    if (status === -1) return;
    clearInterval(timer);
    if (status !== 0) return;
    codeMoved = true;
    for (let i = spares.length - 1; i >= 0; i--) {
      const s = spares[i];
      if (s.codeMoved) continue;
      spares.splice(i, 1);
      retired.add(s.pid);
      native.closeFd(s.specFd);
    }
    scheduleRefill();
  }, 20);
  timer.unref();
}

async function main(): Promise<void> {
  // Ctrl-C, or a SIGTERM to the process group (systemd, `timeout`), must not
  // end the zygote: its children would die with it (SIGKILL, their
  // parent-death signal) instead of seeing the signal themselves. It ends
  // with its parent anyway. (Python's forkserver ignores SIGINT likewise.)
  native.ignoreStopSignals?.();
  // Load the library's shareable kinds once, so every child has them for free.
  await import('../index.js');
  // The pool's worker module too, under the very URL Pool asks for: a child's
  // import() then finds it in the module map it inherited (~40 ms saved per worker).
  await import(pathToFileURL(join(__dirname, 'pool-worker.js')).href);
  const preload = JSON.parse(process.env[kPreloadEnv] ?? '[]') as string[];
  delete process.env[kPreloadEnv];
  for (const m of preload) {
    try {
      await import(m.startsWith('/') ? pathToFileURL(m).href : m);
    } catch (e) {
      process.stderr.write(`multiproc forkserver: preloading ${m} failed: ${(e as Error).message}\n`);
    }
  }
  await warmUp(true);
  // A native watcher, not a net.Socket: each fork child must close it, and
  // destroying a stream there cost ~5 ms of copy-on-write faults per child.
  requests = native.watchFd(kRequestFd, readRequests, true);
  Atomics.store(board, kReady, 1);
  wake(buffer, kReady * 4, -1);
  // fork() copies the page tables of anonymous memory but leaves a file
  // mapping (node's code) for each child to fault in again, page by page.
  // With the code on anonymous huge pages, children inherit it mapped:
  // ~130 fewer page faults per child here, start+join back to back
  // 25.4 -> 22.7 ms (medians of 5 rounds). Node's --use-largepages does the
  // same at start-up, where it cost 0.1-0.2 s before the first child; this
  // runs on a thread of its own while the zygote serves requests.
  if (process.env.MULTIPROC_FORKSERVER_HUGE_CODE !== '0') {
    native.moveCodeToHugePages();
    awaitCodeMove();
  }
  scheduleRefill();
}

void main();
