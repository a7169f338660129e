/**
 * Where this library's files are, and where the process was launched: the
 * two places a child is started from.
 *
 * libDir has symlinks resolved. A child's entry script (bootstrap, zygote,
 * tracker) is started by that path and loads the library from there, so every
 * URL of the library's own modules sent to a child must name the same files:
 * under --preserve-symlinks (NODE_PRESERVE_SYMLINKS=1) with the package
 * linked into node_modules, the parent's __dirname named the link, the child
 * loaded a second copy of the library from the real path, and every Pool
 * worker failed (a helper's trial: "conn[kUserWord] is not a function").
 *
 * launchCwd is the directory the process was in when it loaded the library.
 * Node resolves relative and bare `--require`/`--import` values (in execArgv
 * and NODE_OPTIONS, which children inherit) against the cwd a process starts
 * in; a child started in another one (a Pool's `cwd` option, or after
 * process.chdir()) failed to start (`Cannot find package 'tsx'`). Children
 * are started here and move to their own cwd before any user code runs.
 */
import { existsSync, realpathSync } from 'node:fs';

export const libDir = realpathSync(__dirname);

const launchCwd = process.cwd();

/** The cwd to start a child process in (it then changes to `cwd`, its own). */
export function startCwd(cwd: string): string {
  return existsSync(launchCwd) ? launchCwd : cwd;
}
