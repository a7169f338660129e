/**
 * multiproc's public surface, re-exported by index.ts (which adds the
 * default export); see README.md and docs/*.md.
 */
export {
  MultiprocError, QueueFullError, QueueEmptyError, QueueClosedError, ClosedError, TimeoutError, BrokenBarrierError,
  EOFError, SerializationError, ProcessError, AbortError, WorkerExitError, NativeAddonError,
} from './errors';

// Shared memory and shared values
export { SharedMemory, type SharedMemoryOptions } from './shared-memory';
export { ShareableList, type ShareableItem } from './shareable-list';
export { inspectSegments, removeStale as removeStaleSegments, type InspectOptions, type RemoveResult, type SegmentReport } from './doctor';
export {
  Value, RawValue, SharedArray, RawArray, typecodes, SharedValue, SharedArrayObject,
  type Typecode, type BigTypecode, type NumberTypecode, type ElementOf, type TypedArrayOf, type LockLike, type SharedOptions,
} from './sharedctypes';
export { reduce, rebuild, toHandle, fromHandle, isHandle, isShareable, type Handle, type Shareable } from './reduction';

// @section synchronize (issue 3)
export {
  Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier,
  type AcquireOptions, type LockGuard, type WaitOptions, type ConditionOptions, type BarrierAction, type SemaphoreOptions,
} from './synchronize';
// @section process (issue 4)
export {
  Process, currentProcess, parentProcess, activeChildren, cpuCount, ForkChildExit,
  type ProcessOptions, type ProcessBaseOptions, type ArgsOption, type ProcessTarget, type ModuleTarget, type ProcessInfo, type CurrentProcessInfo, type ArgsFor,
} from './process';
export {
  BaseContext, getContext, getAllStartMethods, getStartMethod, setStartMethod, setForkserverPreload, setForkserverSpares, startForkserver, type StartMethod,
} from './context';
// @section queues (issue 5)
export { Queue, JoinableQueue, SimpleQueue, type QueueOptions, type PutOptions, type GetOptions } from './queues';
export { Pipe, Connection, wait, type PipeOptions } from './connection';
export { BrokenPipeError } from './errors';
// @section pool (issue 6)
export { defineTask, reportProgress, taskSignal, type TaskHandle } from './task';
export { AsyncResult, type AsyncCallbacks } from './async-result';
export { Pool, type PoolOptions, type PoolBaseOptions, type InitargsOption, type TaskRef, type MapOptions, type ImapOptions, type ApplyOptions, type PoolStats, type WorkerStats, type Submitted, type TaskError } from './pool';

