/**
 * multiproc: Python's multiprocessing for Node.js.
 * The public surface; see docs/api.md and ../CONTRACT.md.
 */
export {
  MultiprocError, QueueFullError, QueueEmptyError, QueueClosedError, TimeoutError, BrokenBarrierError,
  EOFError, SerializationError, ProcessError, AbortError, WorkerExitError,
} from './errors';

// Shared memory and shared values
export { SharedMemory, type SharedMemoryOptions } from './shared-memory';
export {
  Value, RawValue, SharedArray, RawArray, typecodes, SharedValue, SharedArrayObject,
  type Typecode, type BigTypecode, type NumberTypecode, type ElementOf, type TypedArrayOf, type LockLike, type SharedOptions,
} from './sharedctypes';
export { reduce, rebuild, toHandle, fromHandle, isHandle, isShareable, type Handle, type Shareable } from './reduction';

// @section synchronize (issue 3)
// @section process (issue 4)
export {
  Process, currentProcess, parentProcess, activeChildren, cpuCount, ForkChildExit,
  type ProcessOptions, type ProcessTarget, type ModuleTarget, type ProcessInfo,
} from './process';
export {
  BaseContext, getContext, getAllStartMethods, getStartMethod, setStartMethod, setForkserverPreload, type StartMethod,
} from './context';
// @section queues (issue 5)
// @section pool (issue 6)
