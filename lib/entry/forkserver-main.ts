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
import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { native } from '../native';
import { waitSync, wake } from '../wait';
import {
  kBoardEnv, kPreloadEnv, kReplyPid, kReplySeq, kRingCapacity, kRingRead, kRingRecordInts, kRingStart, kRingWrite,
} from '../popen/forkserver-layout';
import { join } from 'node:path';
import { dieWithParent, runForked, warmUp } from './bootstrap';

const kRequestFd = 3;
const kDoorbellFd = 4;

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
    pushExit(st.pid, st.code, st.signal);
    any = true;
  }
  if (any) {
    wake(buffer, kRingWrite * 4);
    try {
      writeSync(kDoorbellFd, Buffer.from([1]));
    } catch {
      // parent gone: we exit on EOF anyway
    }
  }
}
let isChild = false;
let requests: Socket;
process.on('SIGCHLD', reap);


function forkOne(seq: number, spec: Uint8Array): void {
  let pid: number;
  try {
    pid = native.fork();
  } catch (e) {
    process.stderr.write(`multiproc forkserver: fork failed: ${(e as Error).message}\n`);
    pid = -1;
  }
  if (pid === 0) {
    isChild = true;
    // Drop everything that belongs to the zygote.
    requests.destroy();
    native.closeFd(kDoorbellFd);
    native.closeFd(watchWrite);
    // The SIGCHLD listener stays (reap() is a no-op here): closing a uv
    // signal handle whose signal was caught but not yet dispatched when we
    // forked never finishes in the child (libuv re-queues it forever, and
    // uv_loop_fork dropped the pending byte): a 100% CPU spin we measured in
    // ~3% of children under load.
    native.detach(buffer);
    runForked(spec, zygotePid, watchRead);
    return;
  }
  Atomics.store(board, kReplyPid, pid);
  Atomics.store(board, kReplySeq, seq);
  wake(buffer, kReplySeq * 4);
}

let pending: Buffer = Buffer.alloc(0);
const queue: { seq: number; spec: Uint8Array }[] = [];
let scheduled = false;

function onData(chunk: Buffer): void {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  while (pending.length >= 8) {
    const seq = pending.readUInt32LE(0);
    const len = pending.readUInt32LE(4);
    if (pending.length < 8 + len) break;
    queue.push({ seq, spec: pending.subarray(8, 8 + len) });
    pending = pending.subarray(8 + len);
  }
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
    forkOne(seq, spec);
  }
}

async function main(): Promise<void> {
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
  await warmUp();
  requests = new Socket({ fd: kRequestFd, readable: true, writable: false });
  requests.on('data', onData);
  requests.on('end', () => process.exit(0));
  requests.on('error', () => process.exit(0));
}

void main();
