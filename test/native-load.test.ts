// Loading the package where its addon cannot be found: the error says what
// to do (node-gyp-build's own says only "No native build was found ...").
// Each case is a copy of dist/cjs (and dist/esm) in a temporary directory, required by a
// child process (no addon is loaded, so nothing is started).
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { collect } from './helpers';

const root = fileURLToPath(new URL('..', import.meta.url));
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A package dir with dist/cjs (and, unless bundled, package.json and binding.gyp), but no build/ and no prebuilds/. */
function copy(bundled: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'multiproc-load-'));
  dirs.push(dir);
  cpSync(join(root, 'dist', 'cjs'), join(dir, 'dist', 'cjs'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(join(root, 'node_modules', 'node-gyp-build'), join(dir, 'node_modules', 'node-gyp-build'));
  cpSync(join(root, 'dist', 'esm'), join(dir, 'dist', 'esm'), { recursive: true });
  if (!bundled) {
    cpSync(join(root, 'package.json'), join(dir, 'package.json'));
    cpSync(join(root, 'binding.gyp'), join(dir, 'binding.gyp'));
  }
  return dir;
}

async function load(dir: string): Promise<{ name: string; message: string; cause: string }> {
  const script = `try { require(${JSON.stringify(join(dir, 'dist', 'cjs', 'index.js'))}); console.log('loaded'); }
    catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message, cause: String(e.cause?.message) })); }`;
  const r = await collect(spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PREBUILDS_ONLY: '' } }));
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as { name: string; message: string; cause: string };
}

describe('loading the package without its addon', () => {
  it('never built (install scripts skipped): names npm rebuild, pnpm approve-builds and the build prerequisites', async () => {
    const e = await load(copy(false));
    expect(e.name).toBe('NativeAddonError');
    expect(e.message).toMatch(/never built/);
    expect(e.message).toContain('npm rebuild multiproc');
    expect(e.message).toContain('pnpm approve-builds');
    expect(e.message).toMatch(/python3, make and a C\+\+ compiler/);
    expect(e.cause).toMatch(/^No native build was found for platform=/);
  });

  it('an ES module that catches the import\'s NativeAddonError goes on (before, on Node 20, the error also ended the process)', async () => {
    const dir = copy(false);
    const script = `try { await import(${JSON.stringify(join(dir, 'dist', 'esm', 'index.mjs'))}); console.log('loaded'); }
      catch (e) { console.log('caught', e.name); }
      setTimeout(() => console.log('still running'), 50);`;
    const r = await collect(spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PREBUILDS_ONLY: '' } }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('caught NativeAddonError\nstill running\n');
  });

  it('the multiproc command: --version works without the addon; doctor says how to build it', async () => {
    const dir = copy(false);
    const cli = join(dir, 'dist', 'cjs', 'cli.js');
    const v = await collect(spawn(process.execPath, [cli, '--version'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(v).toMatchObject({ code: 0, stderr: '' });
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+/);
    const d = await collect(spawn(process.execPath, [cli, 'doctor'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/never built.*npm rebuild multiproc/);
  });

  it('a build that does not load here (another platform): says to rebuild on this machine', async () => {
    const dir = copy(false);
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    writeFileSync(join(dir, 'build', 'Release', 'multiproc.node'), 'not a shared object');
    const e = await load(dir);
    expect(e.name).toBe('NativeAddonError');
    expect(e.message).toMatch(/could not be loaded: .*Rebuild it on this machine: .*npm rebuild multiproc/s);
    expect(e.cause).toBe(e.message.slice(e.message.indexOf(': ') + 2, e.message.indexOf('. Rebuild')));
  });

  it('bundled (no package root above it): says to mark multiproc external', async () => {
    const e = await load(copy(true));
    expect(e.name).toBe('NativeAddonError');
    expect(e.message).toMatch(/cannot find the package root/);
    expect(e.message).toMatch(/Mark it external in your bundler \(esbuild: --external:multiproc/);
  });

  it('its ES module face bundled without the CommonJS build beside it (esbuild --format=esm): says to mark multiproc external (before: "Cannot find module \'../cjs/index.js\'")', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'multiproc-esm-bundle-'));
    dirs.push(dir);
    cpSync(join(root, 'dist', 'esm', 'index.mjs'), join(dir, 'bundle.mjs'));
    const script = `try { await import(${JSON.stringify(join(dir, 'bundle.mjs'))}); console.log('loaded'); }
      catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }`;
    const r = await collect(spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(r.stderr).toBe('');
    const e = JSON.parse(r.stdout) as { name: string; message: string };
    expect(e.name).toBe('NativeAddonError');
    expect(e.message).toMatch(/^multiproc cannot be bundled: .*Mark it external in your bundler \(esbuild: --external:multiproc/);
  });
});
