/**
 * Parks the V8 platform's worker threads of a process that forks (the
 * forkserver zygote for good, a `fork`-method parent around each fork): a
 * child inherits the platform's task-queue condition variable, and waiters
 * blocked on it at the fork made a GC-heavy child hang for ever in
 * pthread_cond_signal (see native/park.cc). Parked, the workers run a task of
 * ours instead of waiting on it.
 *
 * park.cc uses Node's C++ API, so it runs only where the addon was built for
 * this Node's ABI (a source build always is; an N-API prebuild made with
 * another Node major is not, and then nothing is parked).
 */
import { native } from '../native';

const usable = native.nodeModuleVersion === Number(process.versions.modules);
let unparkAtExit = false;

/**
 * Parks every worker thread (waiting up to timeoutMs for them to take their
 * park task); true once all are. Node's exit joins the workers, so they are
 * let go on 'exit' (a drained event loop would wait for them first: only a
 * process whose loop never drains, like the zygote, stays parked).
 */
export function parkWorkers(timeoutMs: number): boolean {
  if (!usable) return false;
  if (!unparkAtExit) {
    unparkAtExit = true;
    process.on('exit', () => native.unparkPlatformWorkers());
  }
  return native.parkPlatformWorkers(timeoutMs);
}

/** Lets parked workers go back to their queue. */
export function unparkWorkers(): void {
  if (usable) native.unparkPlatformWorkers();
}
