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
import { dieWithParent, runForked } from './bootstrap';

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

// Ctrl-C reaches the whole process group: the parent decides what happens to
// its children and to us (we exit on EOF), so we do not die of it here.
const ignore = (): void => {};
process.on('SIGINT', ignore);

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
process.on('SIGCHLD', reap);

let isChild = false;
let requests: Socket;

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
    process.removeListener('SIGCHLD', reap);
    process.removeListener('SIGINT', ignore);
    native.detach(buffer);
    runForked(spec, zygotePid, watchRead);
    return;
  }
  Atomics.store(board, kReplyPid, pid);
  Atomics.store(board, kReplySeq, seq);
  wake(buffer, kReplySeq * 4);
}

let pending: Buffer = Buffer.alloc(0);
function onData(chunk: Buffer): void {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  while (!isChild && pending.length >= 8) {
    const seq = pending.readUInt32LE(0);
    const len = pending.readUInt32LE(4);
    if (pending.length < 8 + len) break;
    const spec = pending.subarray(8, 8 + len);
    pending = pending.subarray(8 + len);
    forkOne(seq, spec);
  }
}

async function main(): Promise<void> {
  // Load the library's shareable kinds once, so every child has them for free.
  await import('../index.js');
  const preload = JSON.parse(process.env[kPreloadEnv] ?? '[]') as string[];
  delete process.env[kPreloadEnv];
  for (const m of preload) {
    try {
      await import(m.startsWith('/') ? pathToFileURL(m).href : m);
    } catch (e) {
      process.stderr.write(`multiproc forkserver: preloading ${m} failed: ${(e as Error).message}\n`);
    }
  }
  requests = new Socket({ fd: kRequestFd, readable: true, writable: false });
  requests.on('data', onData);
  requests.on('end', () => process.exit(0));
  requests.on('error', () => process.exit(0));
}

void main();
