/** Starting fixture children that share this process tree's resource tracker. */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
// The same module instance the package uses (dist/ is loaded natively, not bundled).
import { trackerFdForChild } from '../dist/cjs/resource-tracker.js';

/**
 * `node script ...args` with the tracker's pipe at the same fd number, as
 * Process will do: a big item a child leaves in its own segment must outlive
 * the child until the parent takes it.
 */
export function spawnChild(script: string, args: string[]): ChildProcess {
  const fd = trackerFdForChild();
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
  for (let i = 3; i < fd; i++) stdio.push('ignore');
  stdio.push(fd);
  return spawn(process.execPath, [script, ...args], { stdio, env: { ...process.env, MULTIPROC_TRACKER_FD: String(fd) } });
}

/** Deterministic bytes for big-item checks. */
export function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
