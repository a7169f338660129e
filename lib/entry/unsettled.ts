/**
 * A promise that never settles while nothing is left for it to wait on (the
 * event loop drained): a child's target (bootstrap.ts) or a pool worker's
 * initializer (pool-worker.ts). Node gives an unsettled top-level await
 * exit code 13; before, such a child ended 0 and a consumer that waited on
 * nothing looked like a success (helper-59).
 *
 * Judged at 'exit', not at the first 'beforeExit': a listener of that may
 * schedule the work that settles the promise (a flush), and the loop goes on
 * (helper-62). Only an exit that follows a drained loop counts (a
 * process.exit() of the program's own is its own word), and only while no
 * exit code was set (as Node's own exitCode ??= 13).
 *
 * Exports: onUnsettledAtExit.
 */

/**
 * Calls `unsettled` in the first 'exit' listener if the loop drained and no
 * exit code was set before the returned function (call it once the promise
 * settled) was called.
 */
export function onUnsettledAtExit(unsettled: () => void): () => void {
  let drained = false;
  const onDrain = (): void => {
    drained = true;
  };
  const onExit = (): void => {
    if (drained && process.exitCode === undefined) unsettled();
  };
  process.on('beforeExit', onDrain);
  process.prependListener('exit', onExit);
  return () => {
    process.removeListener('beforeExit', onDrain);
    process.removeListener('exit', onExit);
  };
}
