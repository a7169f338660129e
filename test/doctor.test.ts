// `multiproc doctor`: a tree whose tracker was SIGKILLed leaves its segments
// behind; the doctor finds them (and only them) stale and removes them.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as mp from 'multiproc';
import { collect, fixture, isLinux } from './helpers';

const cli = fileURLToPath(new URL('../dist/cjs/cli.js', import.meta.url));

interface Report {
  segments: mp.SegmentReport[];
  removed: string[];
}

async function doctor(...args: string[]): Promise<Report> {
  const r = await collect(spawn(process.execPath, [cli, 'doctor', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

describe('multiproc doctor', () => {
  // Linux only: elsewhere POSIX shared memory names cannot be listed (the last test checks the error).
  it.runIf(isLinux)('lists who uses each segment; after a tree lost its tracker, removes its segments and nothing in use', async () => {
    const mine = new mp.Value('i', 1); // in use here, and it starts this process's tracker
    const child = spawn(process.execPath, [fixture('create-and-die.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const done = collect(child, 60_000);
    const line = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(String(d))));
    const [raw, value, array] = (JSON.parse(line) as { names: string[] }).names.map((n) => n.replace(/^\//, ''));
    const names = [raw!, value!, array!, mine.segmentName];
    try {
      let r = await doctor('--min-age', '0', ...names);
      const by = new Map(r.segments.map((s) => [s.name, s]));
      expect(r.segments).toHaveLength(4);
      for (const n of [raw!, value!, array!]) {
        expect(by.get(n)!.usedBy).toEqual([child.pid]);
        expect(by.get(n)!.stale).toBe(false);
      }
      expect(by.get(mine.segmentName)!.usedBy).toEqual([process.pid]);
      expect(by.get(value!)!.kind).toBe('Value');
      expect(by.get(array!)!.kind).toBe('SharedArray');
      expect(by.get(raw!)!.kind).toBe('SharedMemory');
      const tracker = by.get(value!)!.trackerPid!;
      expect(tracker).toBeGreaterThan(0);
      expect(by.get(mine.segmentName)!.trackerPid).not.toBe(tracker); // separate trees

      // The crash the tracker exists for, plus the one it cannot cover: the tracker killed first.
      process.kill(tracker, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 100));
      child.kill('SIGKILL');
      await done;
      for (const n of [raw!, value!, array!]) expect(existsSync(`/dev/shm/${n}`)).toBe(true);

      r = await doctor('--min-age', '0', ...names);
      const after = new Map(r.segments.map((s) => [s.name, s]));
      expect(after.get(value!)!).toMatchObject({ stale: true, usedBy: [] });
      expect(after.get(value!)!.reason).toMatch(/tracker .* is gone/);
      expect(after.get(array!)!.stale).toBe(true);
      // Raw SharedMemory records no tracker: while any tracker runs (this process's), any may own it.
      expect(after.get(raw!)!.stale).toBe(false);
      expect(after.get(raw!)!.reason).toMatch(/tracker\(s\) run/);
      expect(after.get(mine.segmentName)!.stale).toBe(false);
      // Too young for the default minimum age.
      expect((await doctor(value!)).segments[0]!.stale).toBe(false);

      r = await doctor('--clean', '--min-age', '0', ...names);
      expect(r.removed.sort()).toEqual([value!, array!].sort());
      expect(existsSync(`/dev/shm/${value}`)).toBe(false);
      expect(existsSync(`/dev/shm/${array}`)).toBe(false);
      expect(existsSync(`/dev/shm/${raw}`)).toBe(true);
      expect(existsSync(`/dev/shm/${mine.segmentName}`)).toBe(true);
      expect(mine.value).toBe(1);
    } finally {
      child.kill('SIGKILL');
      try {
        mp.SharedMemory.attach(raw!).unlink();
      } catch {
        // already gone
      }
      mine.close();
    }
  });

  it('reports what it found, or that it needs Linux; bad arguments get the usage', async () => {
    const r = await collect(spawn(process.execPath, [cli, 'doctor', 'mp-doesnotexist00000'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    if (isLinux) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/No multiproc shared memory segments/);
      const v = new mp.Value('d', 2.5);
      try {
        const t = await collect(spawn(process.execPath, [cli, 'doctor', v.segmentName], { stdio: ['ignore', 'pipe', 'pipe'] }));
        expect(t.stdout).toMatch(/^NAME +KIND +SIZE +AGE +STATE\n/);
        expect(t.stdout).toContain(`${v.segmentName}  Value  72 B`);
        expect(t.stdout).toMatch(new RegExp(`ok: in use by pid ${process.pid}\\n`));
      } finally {
        v.close();
      }
    } else {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/needs Linux/);
    }
    const bad = await collect(spawn(process.execPath, [cli, 'doctor', '--bogus'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Unknown option --bogus[\s\S]*Usage: multiproc doctor/);
  });
});
