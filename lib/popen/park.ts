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
 * this Node's ABI (a source build always is; a prebuild is per ABI too). An
 * addon built for another Node (a build/ kept across a Node upgrade: its
 * N-API part still loads) cannot park, and warnIfUnparkable() says so.
 */
import { native } from '../native';

const builtFor = native.nodeModuleVersion;
const usable = builtFor === Number(process.versions.modules);

/** process.emitWarning's code for an addon that cannot park (built for another Node ABI). */
export const kUnparkableWarning = 'MULTIPROC_ADDON_ABI_MISMATCH';

let warned = false;

/**
 * Once per process, where the park is unusable: a warning that forked
 * children go without it, and how to fix that. Called by a process about to
 * fork or to start a zygote (the zygote itself says nothing: the process that
 * started it already did, where its 'warning' listeners see it).
 */
export function warnIfUnparkable(): void {
  if (usable || warned) return;
  warned = true;
  // From the next tick, and only in this process: a fork() right after this
  // call copies the tick queue, and the warning is not the child's to give.
  const pid = native.getpid();
  process.nextTick(() => {
    if (native.getpid() !== pid) return;
    process.emitWarning(
      `multiproc's native addon was built for another Node.js (NODE_MODULE_VERSION ${builtFor}; this is Node ${process.version}, ` +
        `NODE_MODULE_VERSION ${process.versions.modules}), so V8's worker threads are not parked around fork(): a forkserver ` +
        'or fork child that runs GC-heavy code can hang. Rebuild the addon for this Node with `npm rebuild multiproc` ' +
        "(needs python3, make and a C++ compiler), or use the 'spawn' start method.",
      { code: kUnparkableWarning },
    );
  });
}

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
