#!/usr/bin/env node
/**
 * Benchmark runner: `npm run bench [-- [topic ...] [--quick] [options]]`.
 *
 * Discovers bench/<topic>.bench.mjs, runs the chosen topics one after another (the reference machine has
 * 2 cores: topics running side by side would measure each other), each in its own Node process
 * (bench/lib/host.mjs) so that a topic that throws, crashes or hangs is reported as failed and the run goes
 * on. Prints a table (and a bar chart) per group, and writes bench/results/latest.json and latest.md.
 * The topic module interface and the row format are in bench/README.md.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { barChart, compare, fmtValue, groupRows, markdownTable, normalizeRows, textTable } from './lib/report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const rootDir = dirname(benchDir);
const hostPath = join(benchDir, 'lib', 'host.mjs');

const USAGE = `usage: npm run bench -- [topic ...] [options]
  topic          run only these topics (bench/<topic>.bench.mjs); default: all
  --quick        short runs (fewer iterations; each topic aims at ~10 s)
  --list         list the topics and exit
  --no-chart     no ASCII bar charts
  --no-python    run without the Python peers
  --python=PATH  the python3 to use (default: python3 on PATH, or $MULTIPROC_BENCH_PYTHON)
  --timeout=SEC  give up on a topic after SEC seconds (default 600, 120 with --quick)
  --out=DIR      where latest.json / latest.md go (default bench/results)
  --dir=DIR      look for <topic>.bench.mjs in DIR instead of bench/`;

function parseArgs(argv) {
  const o = { topics: [], quick: false, list: false, chart: true, python: undefined, timeout: undefined, out: join(benchDir, 'results'), dir: benchDir };
  for (const a of argv) {
    if (a === '--quick') o.quick = true;
    else if (a === '--list') o.list = true;
    else if (a === '--no-chart') o.chart = false;
    else if (a === '--no-python') o.python = null;
    else if (a.startsWith('--python=')) o.python = a.slice(9);
    else if (a.startsWith('--timeout=')) {
      o.timeout = Number(a.slice(10));
      if (!(o.timeout > 0)) usageError(`--timeout wants a positive number of seconds, got '${a.slice(10)}'`);
    } else if (a.startsWith('--out=')) o.out = a.slice(6);
    else if (a.startsWith('--dir=')) o.dir = a.slice(6);
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) usageError(`unknown option '${a}'`);
    else o.topics.push(a);
  }
  // 600 s: the queues topic takes ~5 min on the 2-vCPU reference VM (a million items per one-way run).
  o.timeout ??= o.quick ? 120 : 600;
  return o;
}

function usageError(msg) {
  console.error(`bench: ${msg}\n${USAGE}`);
  process.exit(2);
}

function discover(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bench.mjs'))
    .sort()
    .map((f) => ({ name: f.slice(0, -'.bench.mjs'.length), file: join(dir, f) }));
}

function select(all, wanted) {
  if (wanted.length === 0) return all;
  return wanted.map((w) => {
    const exact = all.find((t) => t.name === w);
    if (exact) return exact;
    const partial = all.filter((t) => t.name.includes(w));
    if (partial.length === 1) return partial[0];
    usageError(`${partial.length ? `'${w}' matches several topics` : `no topic '${w}'`}; topics: ${all.map((t) => t.name).join(', ')}`);
  });
}

/** The python3 to compare against: its real executable (pyenv shims cost ~50 ms per start) and version. */
function detectPython(choice) {
  if (choice === null) return { path: null, version: null, why: 'disabled with --no-python' };
  const exe = choice ?? process.env.MULTIPROC_BENCH_PYTHON ?? 'python3';
  try {
    const out = execFileSync(exe, ['-c', 'import sys, multiprocessing, ctypes; print(sys.executable); print(sys.version.split()[0])'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 20_000,
    });
    const [path, version] = out.trim().split('\n');
    return { path, version };
  } catch (e) {
    return { path: null, version: null, why: `${exe} not usable: ${e.message.split('\n')[0]}` };
  }
}

function gitInfo() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: rootDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: rootDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { commit, dirty };
  } catch {
    return null;
  }
}

function machineInfo(python) {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    python: python.version,
    pythonPath: python.path,
  };
}

function commandLine(argv) {
  const quoted = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  return process.env.npm_lifecycle_event === 'bench'
    ? `npm run bench${quoted.length ? ` -- ${quoted.join(' ')}` : ''}`
    : `node ${relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/run.mjs'}${quoted.length ? ` ${quoted.join(' ')}` : ''}`;
}

/** Progress display: a cli-progress bar on a terminal, plain status lines otherwise. */
class Display {
  constructor() {
    this.tty = Boolean(process.stderr.isTTY);
    this.multi = null;
    this.bar = null;
  }

  start(label, quick) {
    this.expectedMs = quick ? 10_000 : 60_000;
    this.t0 = Date.now();
    this.reported = null; // fraction the topic reported, if it does
    this.status = 'starting';
    if (!this.tty) {
      process.stderr.write(`[bench] ${label}: running\n`);
      return;
    }
    this.multi = new cliProgress.MultiBar(
      {
        format: ` ${label} {bar} {percentage}% | {elapsed}s | {status}`,
        barCompleteChar: '█',
        barIncompleteChar: '░',
        barsize: 28,
        hideCursor: true,
        clearOnComplete: true,
        stopOnComplete: false,
        gracefulExit: true,
        autopadding: true,
        formatValue: (v, _o, type) => (type === 'percentage' ? String(v).padStart(3) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar = this.multi.create(1000, 0, { elapsed: '0.0', status: this.status });
    this.timer = setInterval(() => this.refresh(), 200);
  }

  refresh() {
    if (!this.bar) return;
    const elapsed = Date.now() - this.t0;
    // A topic that does not report progress gets a time-based estimate that never claims to be done.
    const f = this.reported ?? Math.min(0.95, elapsed / this.expectedMs);
    this.bar.update(Math.round(Math.max(0, Math.min(1, f)) * 1000), { elapsed: (elapsed / 1000).toFixed(1), status: this.status });
  }

  progress(fraction, label) {
    if (Number.isFinite(fraction)) this.reported = fraction;
    if (label) this.status = label;
    this.refresh();
  }

  log(line) {
    if (this.multi) {
      this.status = line.length > 60 ? `${line.slice(0, 57)}...` : line;
      this.multi.log(`  ${line}\n`);
      this.refresh();
    } else {
      process.stderr.write(`  ${line}\n`);
    }
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.multi) this.multi.stop();
    this.multi = null;
    this.bar = null;
  }
}

/** Runs one topic in its own process group; resolves { status, title, rows, error, ... }. */
function runTopic(topic, opts, display) {
  return new Promise((resolve) => {
    const started = Date.now();
    const load0 = os.loadavg()[0];
    const child = spawn(process.execPath, ['--expose-gc', hostPath, topic.file, JSON.stringify({ quick: opts.quick, python: opts.pythonPath })], {
      cwd: rootDir,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      detached: true, // its own process group, so a timeout can stop whatever the topic started
    });
    current = child;
    let result = null;
    let error = null;
    const stderrTail = [];
    let timedOut = false;

    createInterface({ input: child.stdio[3] }).on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.type === 'log') display.log(msg.msg);
      else if (msg.type === 'progress') display.progress(msg.fraction, msg.label);
      else if (msg.type === 'result') result = msg;
      else if (msg.type === 'error') error = msg;
    });
    createInterface({ input: child.stdout }).on('line', (line) => display.log(line));
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 40) stderrTail.shift();
      display.log(line);
    });

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL'); // the rest of its group is ended by reapGroup on 'exit'
    }, opts.timeout * 1000);

    let settled = false;
    const finish = (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      current = null;
      for (const s of [child.stdout, child.stderr, child.stdio[3]]) s?.destroy();
      const base = { durationSec: (Date.now() - started) / 1000, loadavg: [load0, os.loadavg()[0]] };
      if (result && !error) {
        resolve({ ...base, status: 'ok', title: result.title, rows: result.rows, hostWarnings: result.warnings ?? [] });
        return;
      }
      let message;
      if (timedOut) message = `timed out after ${opts.timeout} s (--timeout=SEC to change)`;
      else if (error) message = error.message;
      else message = `the topic process exited (${signal ? `signal ${signal}` : `code ${code}`}) without a result`;
      resolve({ ...base, status: 'failed', error: message, stack: error?.stack, stderr: stderrTail.join('\n') });
    };
    let closed = false;
    child.on('close', () => {
      closed = true;
    });
    child.on('exit', async (code, signal) => {
      // Whatever the topic left running must end before the next topic starts (see reapGroup).
      await reapGroup(child.pid);
      // Let the pipes deliver their last lines.
      for (let i = 0; i < 20 && !closed; i++) await sleep(50);
      finish(code, signal);
    });
    child.on('error', (e) => {
      error = { message: `could not start the topic process: ${e.message}` };
      finish(null, null);
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function signalGroup(pgid, sig) {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false; // no process left in the group
  }
}

const hasProc = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

/**
 * Live (non-zombie) pids in process group `pgid`, from /proc. Zombies do not count: orphans are reaped by
 * init, which on some VMs takes a second or more.
 */
function groupMembers(pgid) {
  const pids = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') pids.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

const groupAlive = (pgid) => (hasProc ? groupMembers(pgid).length > 0 : signalGroup(pgid, 0));

function isResourceTracker(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tracker-main');
  } catch {
    return false;
  }
}

async function waitGroupGone(pgid, ms) {
  for (let t = 0; t < ms; t += 20) {
    if (!groupAlive(pgid)) return true;
    await sleep(20);
  }
  return !groupAlive(pgid);
}

/**
 * Ends what a finished (or timed-out) topic left in its process group, without leaking shared memory:
 * multiproc's resource tracker lives in the group too and unlinks the tree's leftover segments once every
 * other process of the tree is gone. It must not be killed, not even by a SIGTERM it had no time yet to
 * ignore (it may have started a moment ago), so signals go to everyone but the tracker.
 */
async function reapGroup(pgid) {
  // Usually the group ends by itself: the topic has exited and the tracker finishes its cleanup.
  if (await waitGroupGone(pgid, 1000)) return;
  for (const sig of ['SIGTERM', 'SIGKILL']) {
    if (!hasProc) {
      signalGroup(pgid, sig); // no /proc: cannot tell the tracker apart
      if (await waitGroupGone(pgid, 3000)) return;
      continue;
    }
    for (const pid of groupMembers(pgid)) {
      if (isResourceTracker(pid)) continue;
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
    if (await waitGroupGone(pgid, 3000)) return;
  }
  signalGroup(pgid, 'SIGKILL');
}

let current = null;
let interrupted = false;
async function onSignal(sig) {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\nbench: interrupted (${sig}); stopping the running topic\n`);
  if (current) await reapGroup(current.pid);
  process.exit(130);
}

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[22m` : s);

function printTopic(t, chart) {
  const head = `${t.title ?? t.name} (${t.name}): ${t.status === 'ok' ? 'ok' : 'FAILED'} in ${t.durationSec.toFixed(1)} s`;
  const out = [`\n${bold(`== ${head} ==`)}`];
  if (t.status !== 'ok') {
    out.push(`  error: ${t.error}`);
    if (t.stack) out.push(t.stack.split('\n').slice(1, 6).join('\n'));
    if (t.stderr) out.push(`  last stderr lines:\n${t.stderr.split('\n').slice(-10).map((l) => `    ${l}`).join('\n')}`);
  } else {
    for (const w of t.warnings) out.push(`  warning: ${w}`);
    for (const [group, members] of groupRows(t.rows)) {
      out.push(`\n${bold(group)}`);
      out.push(textTable(members).replace(/^/gm, '  '));
      if (chart) {
        const c = barChart(members);
        if (c) out.push(`\n${c.replace(/^/gm, '  ')}`);
      }
    }
  }
  console.log(out.join('\n'));
}

function markdown(report, chart) {
  const m = report.machine;
  const lines = [
    `## Run of ${report.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- Command: \`${report.command}\`${report.quick ? ' (quick mode: short runs, rougher figures)' : ''}`,
    `- Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}`,
    `- Node ${m.node} (V8 ${m.v8}); Python ${m.python ?? `not used (${report.pythonWhy})`}`,
    ...(report.git ? [`- Code: commit ${report.git.commit}${report.git.dirty ? ' with uncommitted changes' : ''}`] : []),
    `- Load average (1 min) at start / end: ${report.loadavg.map((x) => x.toFixed(2)).join(' / ')}`,
  ];
  for (const t of report.topics) {
    lines.push('', `### ${t.title ?? t.name} (\`${t.name}\`)`, '');
    if (t.status !== 'ok') {
      lines.push(`**Failed** after ${t.durationSec.toFixed(1)} s: ${t.error}`);
      continue;
    }
    lines.push(`Ran in ${t.durationSec.toFixed(1)} s; load average ${t.loadavg.map((x) => x.toFixed(2)).join(' → ')}.`);
    for (const [group, members] of groupRows(t.rows)) {
      lines.push('', `#### ${group}`, '', markdownTable(members));
      if (chart) {
        const c = barChart(members);
        if (c) lines.push('', '```text', c, '```');
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

async function main() {
  const argv = process.argv.slice(2);
  const opts = parseArgs(argv);
  const all = discover(opts.dir);
  if (opts.list) {
    for (const t of all) console.log(t.name);
    return 0;
  }
  if (all.length === 0) usageError(`no *.bench.mjs found in ${opts.dir}`);
  const topics = select(all, opts.topics);
  const python = detectPython(opts.python);
  opts.pythonPath = python.path;
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  const report = {
    date: new Date().toISOString(),
    command: commandLine(argv),
    quick: opts.quick,
    machine: machineInfo(python),
    pythonWhy: python.why ?? null,
    git: gitInfo(),
    loadavg: [os.loadavg()[0]],
    topics: [],
  };
  const m = report.machine;
  console.log(`multiproc benchmarks: ${topics.map((t) => t.name).join(', ')}${opts.quick ? ' (quick)' : ''}`);
  console.log(`${m.cpu}, ${m.cores} cores; Node ${m.node}; Python ${m.python ?? `none (${python.why})`}`);

  const display = new Display();
  for (const [i, topic] of topics.entries()) {
    display.start(`[${i + 1}/${topics.length}] ${topic.name}`, opts.quick);
    let t;
    try {
      t = await runTopic(topic, opts, display);
    } finally {
      display.stop();
    }
    // An interrupted run writes no report; onSignal exits once the topic's processes are gone.
    if (interrupted) await new Promise(() => {});
    const { hostWarnings = [], ...rest } = t;
    const entry = { name: topic.name, file: relative(rootDir, topic.file), ...rest, warnings: [] };
    if (entry.status === 'ok') {
      try {
        const { rows, warnings } = normalizeRows(entry.rows);
        entry.rows = rows;
        entry.warnings = [...hostWarnings, ...warnings, ...compare(rows)];
      } catch (e) {
        Object.assign(entry, { status: 'failed', error: `bad rows: ${e.message}`, rows: undefined });
      }
    }
    report.topics.push(entry);
    printTopic(entry, opts.chart);
  }
  report.loadavg.push(os.loadavg()[0]);

  mkdirSync(opts.out, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const stamp = report.date.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  writeFileSync(join(opts.out, 'latest.json'), json);
  writeFileSync(join(opts.out, `${stamp}.json`), json);
  writeFileSync(join(opts.out, 'latest.md'), markdown(report, opts.chart));

  const failed = report.topics.filter((t) => t.status !== 'ok');
  const missed = report.topics.flatMap((t) => (t.rows ?? []).filter((r) => r.met === false).map((r) => `${t.name}: ${r.name} (${fmtValue(r.value)} ${r.unit}; target ${r.targetText})`));
  console.log(`\n${report.topics.length - failed.length}/${report.topics.length} topics ok${failed.length ? `; FAILED: ${failed.map((t) => t.name).join(', ')}` : ''}`);
  if (missed.length) console.log(`targets not met:\n${missed.map((s) => `  ${s}`).join('\n')}`);
  const rel = relative(process.cwd(), opts.out) || '.';
  console.log(`wrote ${join(rel, 'latest.json')}, ${join(rel, 'latest.md')} (and ${stamp}.json)`);
  return failed.length ? 1 : 0;
}

process.exitCode = await main();
