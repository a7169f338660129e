/**
 * `multiproc doctor`: lists the shared memory segments this library made
 * (by their generated names) and who still uses them, and removes leftovers.
 *
 * Segments are normally never left behind: each tree's resource tracker
 * unlinks what its processes could not. A leftover needs the tracker itself
 * to be gone without cleaning up (SIGKILLed on its own, the OOM killer, a
 * container stopped with /dev/shm kept). The doctor judges each segment:
 *
 * - mapped or open in a live process (Linux: /proc/PID/maps by inode and
 *   /proc/PID/fd): in use, never removed;
 * - otherwise a library segment whose header names its tree's tracker
 *   (kTrackerPidIndex): stale once that tracker is no longer running. A
 *   tracker that runs may still own it (a handle in flight: a large queue
 *   item waits unmapped in its own segment until a consumer takes it);
 * - a raw SharedMemory segment (no header) or one from a build that did not
 *   record its tracker: stale only when no tracker of this library runs on
 *   the machine at all, since any of them may own it.
 *
 * Only segments older than `minAgeMs` and owned by this user are removed.
 * Linux only: POSIX shared memory names cannot be listed on macOS.
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from 'node:fs';
import { kHeaderBytes, kindNames, kLayoutVersion, kMagic, kRefcountIndex, kTrackerPidIndex, kVersionKindIndex } from './layout';
import { native } from './native';

const kShmDir = '/dev/shm';
/** What generateName() makes: a prefix of 1-8 characters, '-', 16 base64url characters. */
const kGeneratedName = /^[A-Za-z0-9_]{1,8}-[A-Za-z0-9_-]{16}$/;

export interface SegmentReport {
  /** Name without the leading '/'. */
  name: string;
  bytes: number;
  /** ms since the segment was last modified (created or resized). */
  ageMs: number;
  /** 'Queue', 'Lock'... for library segments; 'SharedMemory' for raw ones (no header, or a foreign one). */
  kind: string;
  /** Library segments: live attachments plus handles in flight, as the header counts them. */
  refcount: number | null;
  /** Library segments: the tracker of the tree that created it (null: not recorded). */
  trackerPid: number | null;
  /** Live processes that map it or hold it open. */
  usedBy: number[];
  stale: boolean;
  /** Why it is or is not stale, in words. */
  reason: string;
}

export interface InspectOptions {
  /** Only segments at least this old can be stale (default 60,000 ms). */
  minAgeMs?: number;
  /** Only these names (with or without '/'); default: every generated name. */
  names?: string[];
}

function assertLinux(): void {
  if (process.platform !== 'linux') {
    throw new Error(`multiproc doctor needs Linux (/dev/shm and /proc): on ${process.platform} POSIX shared memory names cannot be listed`);
  }
}

interface ProcessScan {
  /** inode of a /dev/shm file -> pids that map it or hold it open. */
  users: Map<number, number[]>;
  /** Running resource trackers of this library. */
  trackers: Set<number>;
}

function isTrackerCmdline(cmdline: string): boolean {
  return cmdline.split('\0').some((arg) => arg.endsWith('/entry/tracker-main.js'));
}

/** One pass over /proc: who maps or holds open which /dev/shm inode, and which processes are trackers. */
function scanProcesses(shmInodes: Set<number>): ProcessScan {
  const users = new Map<number, number[]>();
  const trackers = new Set<number>();
  const add = (ino: number, pid: number): void => {
    const list = users.get(ino);
    if (list === undefined) users.set(ino, [pid]);
    else if (list[list.length - 1] !== pid) list.push(pid);
  };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (isTrackerCmdline(readFileSync(`/proc/${pid}/cmdline`, 'latin1'))) trackers.add(pid);
    } catch {
      continue; // gone, or not ours to read
    }
    try {
      for (const line of readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n')) {
        const ino = Number(line.split(' ', 5)[4]);
        if (ino > 0 && shmInodes.has(ino)) add(ino, pid);
      }
    } catch {
      // another user's process: its maps are not readable
    }
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (!readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${kShmDir}/`)) continue;
        const ino = statSync(`/proc/${pid}/fd/${fd}`).ino;
        if (shmInodes.has(ino)) add(ino, pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  return { users, trackers };
}

/** The header fields the doctor reads, or null for a segment without a library header. */
function readHeader(path: string, size: number): { kind: string; refcount: number; trackerPid: number } | null {
  if (size < kHeaderBytes) return null;
  const bytes = Buffer.alloc(kHeaderBytes);
  try {
    // Read, not mapped: the doctor must not count among the segment's users.
    const fd = openSync(path, 'r');
    try {
      if (readSync(fd, bytes, 0, kHeaderBytes, 0) < kHeaderBytes) return null;
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
  const h = new Int32Array(bytes.buffer, bytes.byteOffset, kHeaderBytes / 4);
  if (h[0] !== kMagic) return null;
  const version = h[kVersionKindIndex] & 0xffff;
  const kind = kindNames[h[kVersionKindIndex] >>> 16] ?? `kind ${h[kVersionKindIndex] >>> 16}`;
  return {
    kind: version === kLayoutVersion ? kind : `${kind} (layout ${version})`,
    refcount: h[kRefcountIndex],
    trackerPid: h[kTrackerPidIndex],
  };
}

/** Every segment with a generated name in /dev/shm (or the ones named), judged as described above. */
export function inspectSegments(options: InspectOptions = {}): SegmentReport[] {
  assertLinux();
  const minAgeMs = options.minAgeMs ?? 60_000;
  const only = options.names?.map((n) => (n.startsWith('/') ? n.slice(1) : n));
  const uid = process.getuid?.() ?? -1;
  const now = Date.now();
  const found: { name: string; path: string; ino: number; bytes: number; ageMs: number; mine: boolean }[] = [];
  for (const name of only ?? readdirSync(kShmDir)) {
    if (only === undefined && !kGeneratedName.test(name)) continue;
    const path = `${kShmDir}/${name}`;
    try {
      const st = statSync(path);
      if (!st.isFile()) continue;
      found.push({ name, path, ino: st.ino, bytes: st.size, ageMs: Math.max(0, now - st.mtimeMs), mine: st.uid === uid });
    } catch {
      // gone meanwhile, or named but absent
    }
  }
  const scan = scanProcesses(new Set(found.map((f) => f.ino)));
  return found.map((f): SegmentReport => {
    const header = readHeader(f.path, f.bytes);
    const usedBy = scan.users.get(f.ino) ?? [];
    const trackerPid = header !== null && header.trackerPid > 0 ? header.trackerPid : null;
    const report: SegmentReport = {
      name: f.name,
      bytes: f.bytes,
      ageMs: f.ageMs,
      kind: header?.kind ?? 'SharedMemory',
      refcount: header?.refcount ?? null,
      trackerPid,
      usedBy,
      stale: false,
      reason: '',
    };
    if (usedBy.length > 0) report.reason = `in use by pid ${usedBy.join(', ')}`;
    else if (!f.mine) report.reason = 'owned by another user';
    else if (trackerPid !== null && scan.trackers.has(trackerPid)) report.reason = `unmapped, but its tracker (pid ${trackerPid}) runs: a handle may be in flight`;
    else if (trackerPid === null && scan.trackers.size > 0) report.reason = `unmapped; its tracker is not recorded and ${scan.trackers.size} tracker(s) run, any of which may own it`;
    else if (f.ageMs < minAgeMs) report.reason = `unmapped and unowned, but younger than ${Math.round(minAgeMs / 1000)} s`;
    else {
      report.stale = true;
      report.reason = trackerPid !== null ? `unmapped, and its tracker (pid ${trackerPid}) is gone` : 'unmapped, and no tracker runs';
    }
    return report;
  });
}

/** Unlinks the stale segments of a report; returns the names removed. */
export function removeStale(reports: SegmentReport[]): string[] {
  assertLinux();
  const removed: string[] = [];
  for (const r of reports) {
    if (!r.stale) continue;
    try {
      if (native.shmUnlink(`/${r.name}`)) removed.push(r.name);
    } catch {
      // removed by someone else meanwhile
    }
  }
  return removed;
}
