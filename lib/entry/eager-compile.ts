/**
 * The forkserver zygote's first import (forkserver-main.ts): the library's
 * own modules, which it loads right after, are compiled eagerly (V8's
 * --no-lazy) until endEagerCompile(), so that the functions only its
 * children run (bootstrap's runSpec, the pool worker's poolWorkerMain, their
 * exit hooks...) have bytecode before any fork. Compiled lazily, every child
 * parsed and compiled them again: ~20 functions, ~1 ms of a pool worker's CPU
 * between its spec and its first result (V8's --log-function-events in the
 * zygote, whose log its children share). Costs the zygote a few ms at boot
 * and ~1.5 MB of bytecode, shared by its children.
 *
 * Node's own modules that the library needs are loaded first, lazily as
 * always: under --no-lazy every function of theirs would be compiled, used or
 * not (the zygote's --single-threaded already makes V8 refuse Node's code
 * cache, so they compile from source either way: review helper-95). One
 * missing from this list is only compiled eagerly too. The bytecode compiled
 * here but never run in the zygote may be flushed after ~19 of its major GCs
 * (helper-95; a zygote runs ~2 in 150 starts): then a child compiles it again.
 *
 * Not when the user's own flags name lazy compilation (theirs is kept), nor
 * under NODE_COMPILE_CACHE (Node 22+: the library's cached code would be
 * refused and rewritten, in turn, by the zygote and by its parent), nor with
 * MULTIPROC_FORKSERVER_EAGER_COMPILE=0.
 */
import { setFlagsFromString } from 'node:v8';

const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
// V8 takes --no-lazy, --no_lazy and --nolazy alike (and - and _ anywhere in a name):
// one missed here was overridden by endEagerCompile for the zygote and every child.
const eager = process.env.MULTIPROC_FORKSERVER_EAGER_COMPILE !== '0' && !process.env.NODE_COMPILE_CACHE && !flags.some((f) => /^--(no[-_]?)?lazy(=|$)/.test(f));

if (eager) {
  for (const m of ['buffer', 'child_process', 'crypto', 'fs', 'module', 'net', 'os', 'path', 'stream', 'url', 'util', 'vm', 'worker_threads']) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(`node:${m}`);
  }
  setFlagsFromString('--no-lazy');
}

/** Back to lazy compilation: for the user's preload modules and for every child. */
export function endEagerCompile(): void {
  if (eager) setFlagsFromString('--lazy');
}
