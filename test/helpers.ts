/** Small helpers for tests that start real child processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <fixture> ...args` to completion and collects its output. */
export function runNode(script: string, args: string[] = [], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): Promise<ChildResult> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
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
