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
 */
import { appendFileSync } from 'node:fs';
import { native } from '../native';

process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('SIGHUP', () => {});

const live = new Map<string, { type: string; count: number }>();
let pending = '';

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  let nl: number;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    const [cmd, name, type] = line.split(':');
    if (!name) continue;
    // Counted: a create that failed (EEXIST) registers and unregisters a name
    // that may belong to an earlier create, or to someone else.
    const entry = live.get(name);
    if (cmd === 'REGISTER') live.set(name, { type: type ?? 'object', count: (entry?.count ?? 0) + 1 });
    else if (cmd === 'UNREGISTER' && entry !== undefined) {
      if (entry.count <= 1) live.delete(name);
      else entry.count--;
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
