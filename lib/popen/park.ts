/**
 * Parks the V8 platform's worker threads of a process around each fork()
 * (the forkserver zygote, a `fork`-method parent): a child inherits the
 * platform's task queue as it is at the fork, and idle workers are waiters
 * on its condition variable that do not exist in the child; forked while
 * one was being woken, a GC-heavy child hung for ever in
 * pthread_cond_signal (see native/park.cc). Parked, the workers wait on a
 * word of ours instead, outside the queue.
 *
 * park.cc uses Node's C++ API, so it runs only where the addon was built for
 * this Node's ABI (a source build always is; a prebuild is per ABI too).
 */
import { native } from '../native';

const usable = native.nodeModuleVersion === Number(process.versions.modules);

/**
 * Parks every worker thread (waiting up to timeoutMs for them to take their
 * park task); true once all are. Unpark right after the fork, whatever this
 * returned (tasks of a park that timed out are still taken later): while they
 * are parked, tasks V8 posts are not run (a child forked then would count
 * them as in progress for good), and Node's exit, which joins the workers,
 * would wait for ever.
 */
export function parkWorkers(timeoutMs: number): boolean {
  return usable && native.parkPlatformWorkers(timeoutMs);
}

/** Lets parked workers go back to their queue. */
export function unparkWorkers(): void {
  if (usable) native.unparkPlatformWorkers();
}
