/** Small helpers for tests that start real child processes. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <fixture> ...args` to completion and collects its output. */
export function runNode(script: string, args: string[] = [], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; nodeArgs?: string[]; cwd?: string } = {}): Promise<ChildResult> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, ...(options.cwd ? { cwd: options.cwd } : {}) });
  return collect(child, options.timeoutMs ?? 30_000);
}

export function collect(child: ChildProcess, timeoutMs = 30_000): Promise<ChildResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export const isLinux = process.platform === 'linux';
export const isDarwin = process.platform === 'darwin';

/** What a segment of `size` bytes measures when attached: macOS rounds shm objects up to whole pages. */
export function attachedSize(size: number): number {
  if (!isDarwin) return size;
  const page = process.arch === 'arm64' ? 16384 : 4096;
  return Math.ceil(size / page) * page;
}

export interface ProcessRow {
  pid: number;
  ppid: number;
  /** Zombie (exited, not yet reaped): dead for every purpose here. */
  zombie: boolean;
  command: string;
}

/** Every process this user can see: /proc on Linux, ps(1) elsewhere (macOS). */
export function processTable(): ProcessRow[] {
  const rows: ProcessRow[] = [];
  if (existsSync('/proc/self/stat')) {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
        const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const command = readFileSync(`/proc/${d}/cmdline`, 'latin1').split('\0').join(' ').trim();
        rows.push({ pid: Number(d), ppid: Number(ppid), zombie: state === 'Z' || state === 'X', command });
      } catch {
        // ended while we looked
      }
    }
    return rows;
  }
  for (const line of execFileSync('ps', ['-A', '-ww', '-o', 'pid=,ppid=,stat=,command='], { encoding: 'utf8' }).split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s?(.*)$/.exec(line);
    if (m) rows.push({ pid: Number(m[1]), ppid: Number(m[2]), zombie: m[3]!.startsWith('Z'), command: m[4]! });
  }
  return rows;
}

/** The pids of root's descendants (not zombies' children: they have none). */
export function descendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const r of processTable()) {
    if (!kids.has(r.ppid)) kids.set(r.ppid, []);
    kids.get(r.ppid)!.push(r.pid);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of kids.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/** Whether pid runs (a zombie does not). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (existsSync('/proc/self/stat')) {
    try {
      return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
    } catch {
      return false;
    }
  }
  const row = processTable().find((r) => r.pid === pid);
  return row !== undefined && !row.zombie;
}

/**
 * Whether the segment `name` exists, on any OS: attaching is the only way to
 * ask on macOS, which has no /dev/shm to look in.
 */
export async function segmentExists(name: string): Promise<boolean> {
  const mp = await import('multiproc');
  try {
    mp.SharedMemory.attach(name).close();
    return true;
  } catch (e) {
    if (/No shared memory segment named/.test((e as Error).message)) return false;
    throw e;
  }
}

/** Whether `python3` with multiprocessing.shared_memory is on PATH. */
export async function hasPython(): Promise<boolean> {
  try {
    const r = await collect(spawn('python3', ['-c', 'import multiprocessing.shared_memory'], { stdio: ['ignore', 'pipe', 'pipe'] }), 10_000);
    return r.code === 0;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether this thread has an rseq area (Linux, glibc >= 2.35 unless turned off): see native CurrentCpuWord. */
export function hasRseqWord(): boolean {
  if (process.platform !== 'linux') return false;
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  if (glibc === undefined) return false;
  const [major, minor] = glibc.split('.').map(Number);
  return (major! > 2 || (major === 2 && minor! >= 35)) && !(process.env.GLIBC_TUNABLES ?? '').includes('rseq=0');
}
