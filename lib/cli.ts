#!/usr/bin/env node
/**
 * The `multiproc` command (package.json "bin"). One subcommand for now:
 *
 *   multiproc doctor [--clean] [--min-age SECONDS] [--json] [NAME...]
 *
 * lists the shared memory segments this library made and who uses them, and
 * with --clean removes the stale ones (see lib/doctor.ts for the rules).
 * `multiproc --version` and `--help` work without the native addon (the
 * doctor, which needs it, is loaded only for its command).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { SegmentReport } from './doctor';

const usage = `Usage: multiproc <command> [options]

Commands:
  doctor    list the shared memory segments multiproc made and remove stale
            ones (multiproc doctor --help)

Options:
  -h, --help       show this help
  -v, --version    print multiproc's version`;

const doctorUsage = `Usage: multiproc doctor [--clean] [--min-age SECONDS] [--json] [NAME...]

Lists the shared memory segments multiproc made (/dev/shm), which live
processes use them, and which are stale: unused, and no resource tracker left
that owns them (one was killed without cleaning up). --clean removes the
stale ones. NAME...: only these segments. --min-age: only segments at least
this old can be stale (default 60).

Exit status: 0; 1 if a NAME does not exist or is not a segment multiproc
made, or a stale segment could not be removed; 2 for bad arguments.`;

/** This package's version, from the package.json above this file (dist/cjs/cli.js). */
function version(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'multiproc' && typeof pkg.version === 'string') return pkg.version;
    }
    if (dirname(dir) === dir) throw new Error(`multiproc: cannot find its package.json above ${__dirname}`);
  }
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(n < 10 * 1024 ** 2 ? 1 : 0)} MB`;
  return `${(n / 1024 ** 3).toFixed(1)} GB`;
}

function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

function table(reports: SegmentReport[]): string {
  const rows = [['NAME', 'KIND', 'SIZE', 'AGE', 'STATE'], ...reports.map((r) => [r.name, r.kind, formatBytes(r.bytes), formatAge(r.ageMs), `${r.stale ? 'STALE' : 'ok'}: ${r.reason}`])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

function doctor(args: string[]): number {
  let clean = false;
  let json = false;
  let minAgeMs = 60_000;
  const names: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--clean') clean = true;
    else if (a === '--json') json = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${doctorUsage}\n`);
      return 0;
    } else if (a === '--min-age') {
      const arg = args[++i];
      const v = arg !== undefined && /^\d+(\.\d+)?$/.test(arg) ? Number(arg) : NaN;
      if (!(v >= 0)) {
        process.stderr.write(`--min-age needs a number of seconds >= 0, got ${arg === undefined ? 'nothing' : JSON.stringify(arg)}\n`);
        return 2;
      }
      minAgeMs = v * 1000;
    } else if (a.startsWith('-')) {
      process.stderr.write(`Unknown option ${a}\n\n${doctorUsage}\n`);
      return 2;
    } else names.push(a);
  }
  // Loaded here, not at the top: it loads the native addon, which --help and --version do without.
  const { inspectSegments, removeStale } = require('./doctor') as typeof import('./doctor');
  const reports = inspectSegments({ minAgeMs, names: names.length > 0 ? names : undefined });
  const { removed, failed } = clean ? removeStale(reports) : { removed: [], failed: [] };
  const found = new Set(reports.map((r) => r.name));
  const missing = names.map((n) => n.replace(/^\//, '')).filter((n) => !found.has(n));
  // A name that is not there is an error, as for ls or rm: a script must not read "nothing stale" from it.
  const code = failed.length > 0 || missing.length > 0 ? 1 : 0;
  if (json) {
    process.stdout.write(`${JSON.stringify({ segments: reports, removed, failed, missing }, null, 2)}\n`);
    return code;
  }
  for (const n of missing) {
    process.stderr.write(
      existsSync(`/dev/shm/${n}`)
        ? `${n}: not a segment multiproc made (its names look like mp-AbCdEfGh0123456_: a prefix, '-', 16 characters); the doctor leaves other programs' segments alone\n`
        : `${n}: no such shared memory segment in /dev/shm\n`,
    );
  }
  if (missing.length > 0 && reports.length === 0) return code;
  if (reports.length === 0) {
    process.stdout.write('No multiproc shared memory segments in /dev/shm.\n');
    return code;
  }
  process.stdout.write(`${table(reports)}\n`);
  const stale = reports.filter((r) => r.stale);
  if (clean) process.stdout.write(`\nRemoved ${removed.length} stale segment(s)${removed.length > 0 ? `: ${removed.join(', ')}` : ''}.\n`);
  else if (stale.length > 0) process.stdout.write(`\n${stale.length} stale segment(s), ${formatBytes(stale.reduce((n, r) => n + r.bytes, 0))}: run \`multiproc doctor --clean\` to remove them.\n`);
  for (const f of failed) process.stderr.write(`Could not remove ${f.name}: ${f.error}\n`);
  return code;
}

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === '--help' || command === '-h') {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (command === 'doctor') {
    try {
      return doctor(rest);
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 1;
    }
  }
  if (command === undefined) {
    process.stderr.write(`${usage}\n`);
    return 0;
  }
  process.stderr.write(`Unknown ${command.startsWith('-') ? 'option' : 'command'} ${command}\n\n${usage}\n`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
