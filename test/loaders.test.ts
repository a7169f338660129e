/**
 * Issue 4: a program run under an ESM loader (`node --import tsx main.ts`)
 * starts children whose targets are TypeScript modules. The default start
 * method is then 'spawn', which passes the parent's execArgv on, so the
 * children load `.ts` files through the same loader.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { collect, fixture } from './helpers';

const root = fileURLToPath(new URL('..', import.meta.url));

function runTsx(args: string[]): ReturnType<typeof collect> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture('ts-loader/main.ts'), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, 30_000);
}

describe('children of a program run with --import tsx', () => {
  for (const method of [undefined, 'spawn'] as const) {
    it(`run TypeScript module targets (${method ?? 'default start method'})`, async () => {
      const r = await runTsx(method === undefined ? [] : [method]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
      // The default switches to spawn under loader hooks (forked children have no loader thread).
      expect(out.defaultMethod).toBe('spawn');
      const proc = out.process as { input: number; value: number; pid: number; execArgv: string[] };
      expect(proc.input).toBe(14);
      expect(proc.value).toBe(42); // computed by util.ts (a const enum: really compiled TypeScript)
      expect(proc.execArgv).toEqual(['--import', 'tsx']);
      expect(out.exitCode).toBe(0);
      expect(out.map).toEqual([3, 6, 9, 12, 15]);
      expect(out.mapDefault).toEqual([36, 49]);
    });
  }

  it('under forkserver: function targets and function tasks run, module targets are refused with a clear error', async () => {
    const r = await runTsx(['forkserver']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({
      fnTarget: [0, 5],
      moduleTarget: ['ProcessError', true],
      poolFn: [2, 3, 4],
      poolModule: ['ProcessError', true],
    });
  });
});

// A CommonJS-only hook (`--require tsx/cjs`) teaches require() the .ts
// extension, not import(): the child loads a .ts target with require. No ESM
// loader hooks, so forkserver stays the default (its zygote carries the
// --require; forked children keep the in-thread hook).
describe('children of a program run with --require tsx/cjs', () => {
  for (const method of [undefined, 'spawn'] as const) {
    it(`run TypeScript module targets that name the main file (${method ?? 'default start method'})`, async () => {
      const child = spawn(process.execPath, ['--require', 'tsx/cjs', fixture('ts-cjs/main.ts'), ...(method === undefined ? [] : [method])], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const r = await collect(child, 30_000);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.trim())).toEqual({
        method: method ?? 'forkserver',
        process: 10,
        exitCode: 0,
        map: [2, 4, 6],
        mapDefault: [36, 49],
      });
    });
  }
});

describe('children of a program run with --experimental-default-type=module', () => {
  it('load the library\'s CommonJS entry files all the same, from outside node_modules (before: the forkserver died, spawn exited 1)', async () => {
    const child = spawn(process.execPath, ['--experimental-default-type=module', fixture('default-type-module.mjs')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const r = await collect(child, 30_000);
    expect(r.stderr.replace(/^.*ExperimentalWarning.*\n|^\(Use `node --trace-warnings.*\n/gm, '')).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['forkserver 0', 'spawn 0']);
  });
});
