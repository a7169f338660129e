/**
 * The resource tracker process (see lib/resource-tracker.ts). Reads
 * REGISTER/UNREGISTER lines on stdin until every writer is gone, then
 * unlinks what is left. Ignores SIGINT/SIGTERM: a Ctrl-C sent to the
 * terminal's process group must not kill it before it has cleaned up.
 *
 * Segments of type 'shared_memory' (raw SharedMemory the user created and
 * never unlinked) are leaks a user should hear about: they are reported on
 * stderr when MULTIPROC_WARN_LEAKS=1, and in every case appended to the file
 * named by MULTIPROC_LEAK_REPORT (the test suite uses it). 'object' segments
 * (Value, Lock, Queue...) are the library's own and are cleaned silently.
 *
 * A Blob (a big item's segment) is registered with its creator's identity,
 * and holds the creator's only reference until the creator publishes it,
 * just before committing the record that names it (layout.ts
 * kBlobPending). While such Blobs are registered, the tracker looks every
 * kSweepMs whether their creators still run; a Blob whose creator is gone
 * and whose header still says pending (or was never finished) can never be
 * named by anyone, and is unlinked then, not when the tree ends: a pool
 * worker killed by terminate() while it sent a big result left one for the
 * pool's whole life.
 *
 * A process that sees a child of its own die by a signal says so (SWEEP):
 * the tracker then gives back, in every segment of the tree, the references
 * held by processes that no longer exist (holders.ts), unlinking those
 * that nobody else holds. It maps every segment of the tree (~20 us each):
 * the next sweep waits at least kHolderSweepGapMs, and twice the last one's
 * length, after its end, so that a pool whose workers keep being killed
 * (timeouts) costs the tracker at most a third of a CPU (review helper-88:
 * 5000 segments, a sweep per kill, took a whole one).
 */
import { appendFileSync } from 'node:fs';
import { giveBackDead } from '../holders';
import { Kind, kBlobPending, kFlagsIndex, kHeaderBytes, kLayoutVersion, kMagic, kMagicIndex, kVersionKindIndex } from '../layout';
import { creatorGone } from '../liveness';
import { native } from '../native';

process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('SIGHUP', () => {});

const live = new Map<string, { type: string; count: number }>();
let pending = '';

/** Blobs that may still be their creator's alone: name -> creator (pid, startStamp), and when to look whether it published them. */
const unpublished = new Map<string, { pid: number; stamp: number; lookAt: number }>();
const kSweepMs = 100;
/**
 * How old an entry of a living creator gets before the sweep looks whether
 * the Blob was published, and then how often: a published one leaves the
 * map, so the sweep walks only Blobs still being put (it walked every unread
 * Blob for as long as its creator lived: 40k of them cost 10% of a core;
 * review helper-77).
 */
const kPublishedLookMs = 1000;
let sweepTimer: NodeJS.Timeout | null = null;

/**
 * What the segment `name` is, as far as a Blob's creator goes: 'gone'
 * (unlinked already: its reader took it), 'making' (empty, no header yet:
 * its creator is between shm_open and its header), 'pending' (not yet
 * published), 'published', or 'other' (not a Blob).
 */
function blobState(name: string): 'gone' | 'making' | 'pending' | 'published' | 'other' {
  let buffer: ArrayBuffer;
  try {
    buffer = native.shmAttach(name);
  } catch (e) {
    return (e as { code?: string }).code === 'EINVAL' ? 'making' : 'gone'; // EINVAL: empty
  }
  try {
    if (buffer.byteLength < kHeaderBytes) return 'making';
    const h = new Int32Array(buffer, 0, kHeaderBytes / 4);
    if (Atomics.load(h, kMagicIndex) !== kMagic) return 'making';
    if (h[kVersionKindIndex]! >>> 16 !== Kind.Blob) return 'other';
    return (Atomics.load(h, kFlagsIndex) & kBlobPending) !== 0 ? 'pending' : 'published';
  } finally {
    native.unmap(buffer);
  }
}

function sweep(): void {
  const gone = new Map<string, boolean>();
  const now = Date.now();
  for (const [name, c] of unpublished) {
    const key = `${c.pid}:${c.stamp}`;
    let dead = gone.get(key);
    if (dead === undefined) gone.set(key, (dead = creatorGone(c.pid, c.stamp)));
    if (!dead) {
      if (now < c.lookAt) continue;
      const state = blobState(name);
      if (state !== 'pending' && state !== 'making') unpublished.delete(name); // published (or gone): its record holds it
      else c.lookAt = now + kPublishedLookMs;
      continue;
    }
    unpublished.delete(name);
    // A dead creator's Blob never published (or never finished: no header, or empty) can never be named.
    const state = blobState(name);
    if (state !== 'pending' && state !== 'making') continue; // published: its record holds it, and its reader unlinks it
    try {
      native.shmUnlink(name);
    } catch {
      // gone meanwhile
    }
    live.delete(name);
  }
  if (unpublished.size === 0 && sweepTimer !== null) {
    clearInterval(sweepTimer);
    sweepTimer = null;
  }
}

const kHolderSweepGapMs = 250;
let holderSweepTimer: NodeJS.Timeout | null = null;
/** When the next sweep may start (performance.now()). */
let nextHolderSweep = 0;

function requestHolderSweep(): void {
  if (holderSweepTimer !== null) return;
  (holderSweepTimer = setTimeout(holderSweep, Math.max(0, nextHolderSweep - performance.now()))).unref();
}

function holderSweep(): void {
  holderSweepTimer = null;
  const t0 = performance.now();
  try {
    sweepHolders();
  } finally {
    const end = performance.now();
    nextHolderSweep = end + Math.max(kHolderSweepGapMs, 2 * (end - t0));
  }
}

function sweepHolders(): void {
  for (const [name, { type }] of live) {
    if (type !== 'object') continue;
    let buffer: ArrayBuffer;
    try {
      buffer = native.shmAttach(name);
    } catch {
      continue; // unlinked already, or still empty
    }
    let zero = false;
    try {
      if (buffer.byteLength < kHeaderBytes) continue;
      const h = new Int32Array(buffer, 0, kHeaderBytes / 4);
      if (Atomics.load(h, kMagicIndex) !== kMagic || (h[kVersionKindIndex]! & 0xffff) !== kLayoutVersion) continue;
      zero = giveBackDead(h) === 'zero';
    } finally {
      native.unmap(buffer);
    }
    if (!zero) continue;
    try {
      native.shmUnlink(name);
    } catch {
      // gone meanwhile
    }
    live.delete(name);
    unpublished.delete(name);
  }
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  let nl: number;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    const [cmd, name, type, pid, stamp] = line.split(':');
    if (cmd === 'SWEEP') {
      requestHolderSweep();
      continue;
    }
    if (!name) continue;
    // Counted: a create that failed (EEXIST) registers and unregisters a name
    // that may belong to an earlier create, or to someone else.
    const entry = live.get(name);
    if (cmd === 'REGISTER') {
      live.set(name, { type: type ?? 'object', count: (entry?.count ?? 0) + 1 });
      const p = Number(pid);
      if (Number.isInteger(p) && p > 0) {
        unpublished.set(name, { pid: p, stamp: Number(stamp) || 0, lookAt: Date.now() + kPublishedLookMs });
        if (sweepTimer === null) (sweepTimer = setInterval(sweep, kSweepMs)).unref();
      }
    } else if (cmd === 'UNREGISTER' && entry !== undefined) {
      if (entry.count <= 1) {
        live.delete(name);
        unpublished.delete(name);
      } else entry.count--;
    }
  }
});

process.stdin.on('end', () => {
  const leaked: string[] = [];
  for (const [name, { type }] of live) {
    let removed = false;
    try {
      removed = native.shmUnlink(name);
    } catch {
      // already gone or not ours to remove; nothing more to do
    }
    if (removed && type === 'shared_memory') leaked.push(name);
  }
  if (leaked.length > 0) {
    if (process.env.MULTIPROC_WARN_LEAKS === '1') {
      process.stderr.write(`multiproc: unlinked ${leaked.length} SharedMemory segment(s) that were never unlinked: ${leaked.join(', ')}\n`);
    }
    const report = process.env.MULTIPROC_LEAK_REPORT;
    if (report) appendFileSync(report, leaked.map((n) => `${n}\n`).join(''));
  }
  process.exit(0);
});
