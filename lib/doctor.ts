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
 * - otherwise a library segment whose header names its tree's tracker pipe
 *   (kTrackerPipeIndex): owned while any live process holds that pipe open,
 *   which every process of the tree does (and the tracker). A tree that
 *   still runs may need an unmapped segment: a handle in flight, such as a
 *   large queue item waiting in its own segment for a consumer, even after
 *   the tracker alone was killed. Stale once nobody holds the pipe;
 * - a raw SharedMemory segment (no header) or one whose header records no
 *   pipe: stale only when no tracker of this library runs on the machine at
 *   all, since any tree may own it.
 *
 * Only segments with a generated name, owned by this user and at least
 * `minAgeMs` old are ever stale. Linux only (POSIX shared memory names
 * cannot be listed on macOS), and only this PID namespace: processes of
 * another container that shares /dev/shm are invisible here, so their
 * segments can look stale (docs/shared-memory.md).
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from 'node:fs';
import { kHeaderBytes, kindNames, kLayoutVersion, kMagic, kRefcountIndex, kTrackerPidIndex, kTrackerPipeIndex, kVersionKindIndex } from './layout';
import { native } from './native';
import { checkOptionNames, describeValue } from './validate';

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
  /** Library segments: live processes of the tree that created it (they hold its tracker's pipe). */
  treeAlive: number[];
  /** Live processes that map it or hold it open. */
  usedBy: number[];
  stale: boolean;
  /** Why it is or is not stale, in words. */
  reason: string;
}

export interface InspectOptions {
  /** Only segments at least this old can be stale (default 60,000 ms). */
  minAgeMs?: number | undefined;
  /** Only these names (with or without '/'); default: every generated name. */
  names?: string[] | undefined;
}

function assertLinux(): void {
  if (process.platform !== 'linux') {
    throw new Error(`multiproc doctor needs Linux (/dev/shm and /proc): on ${process.platform} POSIX shared memory names cannot be listed`);
  }
}

interface ProcessScan {
  /** inode of a /dev/shm file -> pids that map it or hold it open. */
  users: Map<number, number[]>;
  /** inode of a pipe -> pids that hold it open. */
  pipes: Map<number, number[]>;
  /** Running resource trackers of this library. */
  trackers: Set<number>;
}

function isTrackerCmdline(cmdline: string): boolean {
  return cmdline.split('\0').some((arg) => arg.endsWith('/entry/tracker-main.js'));
}

/** One pass over /proc: who maps or holds open which /dev/shm inode, and which processes are trackers. */
function scanProcesses(shmInodes: Set<number>): ProcessScan {
  const users = new Map<number, number[]>();
  const pipes = new Map<number, number[]>();
  const trackers = new Set<number>();
  const add = (map: Map<number, number[]>, ino: number, pid: number): void => {
    const list = map.get(ino);
    if (list === undefined) map.set(ino, [pid]);
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
        if (ino > 0 && shmInodes.has(ino)) add(users, ino, pid);
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
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const pipe = /^pipe:\[(\d+)\]$/.exec(link);
        if (pipe !== null) add(pipes, Number(pipe[1]), pid);
        else if (link.startsWith(`${kShmDir}/`)) {
          const ino = statSync(`/proc/${pid}/fd/${fd}`).ino;
          if (shmInodes.has(ino)) add(users, ino, pid);
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return { users, pipes, trackers };
}

/** The header fields the doctor reads, or null for a segment without a library header. */
function readHeader(path: string, size: number): { kind: string; refcount: number; trackerPid: number; trackerPipe: number } | null {
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
    trackerPipe: h[kTrackerPipeIndex] >>> 0,
  };
}

/** Every segment with a generated name in /dev/shm (or the ones named), judged as described above. */
export function inspectSegments(options: InspectOptions = {}): SegmentReport[] {
  assertLinux();
  if (typeof options !== 'object' || options === null) throw new TypeError(`Expected the inspectSegments() options to be an object like { minAgeMs, names }, got ${describeValue(options)}`);
  checkOptionNames(options, ['minAgeMs', 'names'], 'inspectSegments()');
  const minAgeMs = options.minAgeMs ?? 60_000;
  const only = options.names?.map((n) => (n.startsWith('/') ? n.slice(1) : n));
  const uid = process.getuid?.() ?? -1;
  const now = Date.now();
  const found: { name: string; path: string; ino: number; bytes: number; ageMs: number; mine: boolean }[] = [];
  for (const name of only ?? readdirSync(kShmDir)) {
    // Named or not, only names this library generates: never another program's segment.
    if (!kGeneratedName.test(name)) continue;
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
    const pipe = header?.trackerPipe ?? 0;
    const treeAlive = pipe > 0 ? (scan.pipes.get(pipe) ?? []) : [];
    const report: SegmentReport = {
      name: f.name,
      bytes: f.bytes,
      ageMs: f.ageMs,
      kind: header?.kind ?? 'SharedMemory',
      refcount: header?.refcount ?? null,
      trackerPid,
      treeAlive,
      usedBy,
      stale: false,
      reason: '',
    };
    if (usedBy.length > 0) report.reason = `in use by pid ${usedBy.join(', ')}`;
    else if (!f.mine) report.reason = 'owned by another user';
    else if (treeAlive.length > 0) report.reason = `unmapped, but its process tree runs (pid ${treeAlive.join(', ')}): a handle may be in flight`;
    else if (pipe === 0 && scan.trackers.size > 0) report.reason = `unmapped; its owner is not recorded and ${scan.trackers.size} tracker(s) run, any of which may own it`;
    else if (f.ageMs < minAgeMs) report.reason = `unmapped and unowned, but younger than ${Math.round(minAgeMs / 1000)} s`;
    else {
      report.stale = true;
      report.reason = pipe !== 0 ? `unmapped, and no process of its tree runs (tracker pid ${trackerPid ?? '?'})` : 'unmapped, and no tracker runs';
    }
    return report;
  });
}

export interface RemoveResult {
  removed: string[];
  /** Stale segments that could not be removed, with the reason (EACCES...). */
  failed: { name: string; error: string }[];
}

/** Unlinks the stale segments of a report (one already gone is skipped). */
export function removeStale(reports: SegmentReport[]): RemoveResult {
  assertLinux();
  const result: RemoveResult = { removed: [], failed: [] };
  for (const r of reports) {
    if (!r.stale) continue;
    try {
      if (native.shmUnlink(`/${r.name}`)) result.removed.push(r.name);
    } catch (e) {
      result.failed.push({ name: r.name, error: (e as Error).message });
    }
  }
  return result;
}
