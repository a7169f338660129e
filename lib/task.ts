/**
 * Targets and tasks: what a Process or a Pool runs in another process.
 *
 * A function travels as its source text and is compiled in the child, so it
 * must be self-contained (no closure over outer variables; import what it
 * needs inside its body). `{ module, export }` names a module export
 * instead: the child imports the module (ESM or CJS) and calls the export.
 * A relative module path resolves against the file of the caller, as an
 * `import` in that file would. defineTask() makes such a reference that
 * carries the function's types; reportProgress() is a task's way to the
 * parent's onProgress (pool-worker.ts installs the sink).
 *
 * Exports: TaskTarget, TaskHandle, defineTask, reportProgress, taskSignal, kProgressSink, kSignalSink,
 * describeTask, loadTask, explainReferenceError, usesLoaderHooks, checkForkedImport.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as vm from 'node:vm';
import { ProcessError } from './errors';
import { libDir } from './paths';
import { checkOptionNames, describeValue } from './validate';

/** What defineTask() adds to the function it returns: where a worker finds it. */
export interface TaskHandle {
  /** The module's file URL (or absolute path). */
  readonly module: string;
  /** The name the module exports the task under. */
  readonly export: string;
}

const kTaskHandle: unique symbol = Symbol.for('multiproc.taskHandle');

/**
 * Names `fn`, a function the module at `moduleUrl` exports, as a task for
 * Pool and Process, keeping its types at the call site:
 *
 *   export const fib = defineTask(import.meta.url, function fib(n: number): number { ... });
 *   // elsewhere: const xs: number[] = await pool.map(fib, [30, 31]);
 *
 * It returns a function that calls fn (so the export can still be called in
 * this process) and carries { module, export }; a worker imports the module
 * and calls that export, so the task may use the module's own imports (a
 * function sent as source text may not). The export name is fn's name unless
 * given; a worker that finds no such export looks for an exported handle
 * carrying that name, so the handle itself may be the export, under any
 * name. Under CommonJS, pass `__filename`.
 */
export function defineTask<F extends (...args: never[]) => unknown>(moduleUrl: string | URL, fn: F, exportName?: string): F & TaskHandle {
  if (typeof fn !== 'function') throw new TypeError(`Expected "fn" to be the exported function, got ${describeValue(fn)}`);
  if (typeof moduleUrl !== 'string' && !(moduleUrl instanceof URL)) {
    throw new TypeError(`Expected "moduleUrl" to be import.meta.url (or __filename), got ${describeValue(moduleUrl)}`);
  }
  const module = String(moduleUrl);
  if (!/^file:/.test(module) && !isAbsolute(module)) {
    throw new TypeError(`Expected "moduleUrl" to be import.meta.url or an absolute path (__filename), got ${JSON.stringify(module)}`);
  }
  const name = exportName ?? fn.name;
  if (typeof name !== 'string' || name === '' || name === 'anonymous') {
    throw new TypeError('defineTask() needs the name under which the module exports fn: give the function a name or pass it as the third argument');
  }
  const handle = function (this: unknown, ...args: never[]): unknown {
    return fn.apply(this, args);
  };
  Object.defineProperties(handle, {
    name: { value: name },
    length: { value: fn.length },
    module: { value: module, enumerable: true },
    export: { value: name, enumerable: true },
    [kTaskHandle]: { value: true },
  });
  return handle as unknown as F & TaskHandle;
}

function isTaskHandle(v: unknown): v is TaskHandle {
  return typeof v === 'function' && (v as unknown as Record<symbol, unknown>)[kTaskHandle] === true;
}

/** Where a pool worker puts its progress sink while a task runs (a global: any copy of the library finds it). */
export const kProgressSink: unique symbol = Symbol.for('multiproc.progressSink');

/**
 * From inside a Pool task: sends `value` (anything a queue carries) to the
 * call's `onProgress` in the parent, along with the index of the item
 * being run. Returns false, and sends nothing, when no one listens: outside
 * a pool task (the task function called directly, in a test) or when the
 * call has no onProgress. Blocks only if the worker's pipe to the parent is
 * full. A value structured clone cannot carry throws a TypeError.
 */
export function reportProgress(value: unknown): boolean {
  const sink = (globalThis as unknown as Record<symbol, ((v: unknown) => boolean) | undefined>)[kProgressSink];
  return sink !== undefined ? sink(value) : false;
}

/** Where a pool worker puts the running task's signal getter (see taskSignal). */
export const kSignalSink: unique symbol = Symbol.for('multiproc.signalSink');

let neverAborted: AbortSignal | undefined;

/**
 * From inside a Pool task: an AbortSignal that aborts when the call running
 * this task is aborted (its `signal`), passes its `timeout`, or ends early
 * (an imap left before its end). A task that checks it (or passes it on, to
 * fetch or a stream) can stop cleanly; its result is discarded either way,
 * and the rest of its chunk is not run. Whether the worker is also killed,
 * and when, is the call's `cancelGraceMs`. Outside a pool task: a signal that
 * never aborts.
 */
export function taskSignal(): AbortSignal {
  const get = (globalThis as unknown as Record<symbol, (() => AbortSignal | undefined) | undefined>)[kSignalSink];
  return get?.() ?? (neverAborted ??= new AbortController().signal);
}

/** What travels: a function's source text, or a module URL and export name. */
export type TaskTarget = { kind: 'source'; source: string } | { kind: 'module'; url: string; export: string };

// Library frames are skipped by both names: a parent under --preserve-symlinks
// runs it from the link (__dirname), children from the real path (paths.ts).
const ownDirs = [...new Set([libDir, __dirname])];
// With source maps on (tsx) this library's frames may name its TypeScript
// sources (dist/cjs/x.js maps to lib/x.ts), not dist/cjs.
const libSourceDir = resolvePath(libDir, '..', '..', 'lib');

function isOwnFile(file: string): boolean {
  return ownDirs.some((d) => file.startsWith(d + sep)) || file.startsWith(libSourceDir + sep) || file.includes(`${sep}dist${sep}esm${sep}index.mjs`);
}

/**
 * The file of the first caller outside this library (for relative module
 * targets), from V8's call sites rather than the stack's text: the text is
 * source-mapped under --enable-source-maps, and named the TypeScript file
 * (src/x.ts) where the code that ran was out/x.js; and it is cut at
 * Error.stackTraceLimit, which a small value left no caller at all.
 */
function callerFile(): string | null {
  const holder: { stack?: unknown } = {};
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  let sites: NodeJS.CallSite[] = [];
  try {
    Error.stackTraceLimit = 64;
    Error.prepareStackTrace = (_err, callSites) => callSites;
    Error.captureStackTrace(holder, callerFile);
    if (Array.isArray(holder.stack)) sites = holder.stack as NodeJS.CallSite[];
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
  for (const site of sites) {
    const name = site.getFileName();
    if (typeof name !== 'string' || name === '' || name.startsWith('node:')) continue;
    let file: string;
    if (name.startsWith('file://')) file = fileURLToPath(name);
    else if (isAbsolute(name)) file = name;
    else continue; // eval code, a vm script's own name
    if (isOwnFile(file)) continue;
    return file;
  }
  return null;
}

/**
 * A module named by the user (package name, path relative to the calling
 * file, absolute path, URL) as the URL a child can import() from anywhere.
 */
export function resolveForChild(spec: string | URL, what: string): string {
  return resolveModule(spec, callerFile, what);
}

/**
 * `callerOrFind`: the calling file, or callerFile itself, then called only
 * for a spec that needs it (relative, or a package name): its stack walk
 * cost ~0.1 ms per Pool worker and per apply() of an absolute or URL module
 * target, which never uses it. Called from here it still finds the user's
 * frame (this library's are skipped).
 */
function resolveModule(spec: string | URL, callerOrFind: string | null | (() => string | null), what: string): string {
  if (spec instanceof URL) return spec.href;
  if (/^(file|data|node):/.test(spec)) return spec;
  if (isAbsolute(spec)) return pathToFileURL(spec).href;
  const caller = typeof callerOrFind === 'function' ? callerOrFind() : callerOrFind;
  if (spec.startsWith('./') || spec.startsWith('../')) {
    if (caller === null) {
      throw new TypeError(`Cannot resolve the relative module in "${what}" (${JSON.stringify(spec)}): the calling file is unknown; pass an absolute path or a URL (new URL('${spec}', import.meta.url))`);
    }
    return pathToFileURL(resolvePath(dirname(caller), spec)).href;
  }
  const from = caller ?? `${process.cwd()}/`;
  const esm = resolvePackageExport(spec, from);
  if (esm !== null) return pathToFileURL(esm).href;
  try {
    return pathToFileURL(createRequire(from).resolve(spec)).href;
  } catch {
    // 'tasks/fib.mjs' for './tasks/fib.mjs': a package name to Node. Said here,
    // on the caller's stack, when a file of that name is there.
    if (caller !== null && existsSync(resolvePath(dirname(caller), spec))) {
      throw new TypeError(`The module in "${what}" (${JSON.stringify(spec)}) is a package name to Node (it does not start with './', '../' or '/'), and no such package is installed; a file of that name is next to the calling file: write ${JSON.stringify(`./${spec}`)}`);
    }
    return spec; // not found from here: let import() in the child say so
  }
}

let importConditions: Set<string> | undefined;
/** The conditions import() applies: Node's defaults and the user's `--conditions` / `-C`. */
function conditions(): Set<string> {
  if (importConditions !== undefined) return importConditions;
  const set = new Set(['node', 'import', 'default']);
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)];
  for (let i = 0; i < args.length; i++) {
    const m = /^(?:--conditions|-C)(?:=(.*))?$/.exec(args[i]!);
    if (m === null) continue;
    const value = m[1] ?? args[++i];
    if (value !== undefined) set.add(value);
  }
  return (importConditions = set);
}

type PackageJson = { name?: unknown; exports?: unknown };

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A package.json: null if there is none; one that does not parse is an error, as for import(). */
function readPackageJson(dir: string): PackageJson | null {
  const file = join(dir, 'package.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    return JSON.parse(text) as PackageJson;
  } catch (e) {
    throw new TypeError(`Invalid package config ${file}: ${(e as Error).message}`);
  }
}

/** The package.json nearest above `from` (a file path or a folder ending in '/'), and its folder. */
function nearestPackage(from: string): { dir: string; pkg: PackageJson } | null {
  for (let dir = from.endsWith('/') ? from.slice(0, -1) : dirname(from); ; dir = dirname(dir)) {
    if (basename(dir) === 'node_modules') return null; // a package scope ends there, as in Node
    const pkg = readPackageJson(dir);
    if (pkg !== null) return { dir, pkg };
    if (dirname(dir) === dir) return null;
  }
}

/**
 * A package name (with an optional subpath) as import() from `from` would
 * resolve it: the caller's own package if it names itself, else the package
 * found in the node_modules folders above `from`, then its "exports" under
 * the import conditions. null when the package has no "exports" (require's
 * rules, tried next, are then ESM's too) or is not found. The child
 * import()s from this library's own folder, where a package of the caller's
 * folder (workspaces, pnpm) is not found and a dual package resolves under
 * require's conditions, so the parent resolves.
 */
function resolvePackageExport(spec: string, from: string): string | null {
  const m = /^((?:@[^/]+\/)?[^/@][^/]*)(\/.*)?$/.exec(spec);
  if (m === null) return null;
  const [, name, rest] = m;
  const subpath = rest === undefined ? '.' : `.${rest}`;
  const own = nearestPackage(from);
  if (own !== null && own.pkg.name === name && own.pkg.exports !== undefined && own.pkg.exports !== null) {
    return exportedFile(own.dir, own.pkg.exports, name, subpath);
  }
  for (const dir of createRequire(from).resolve.paths(name) ?? []) {
    const pkgDir = join(dir, name);
    const pkg = readPackageJson(pkgDir);
    if (pkg === null) {
      if (isDirectory(pkgDir)) return null; // the first folder of that name is the package, as in Node: require's rules then
      continue;
    }
    if (pkg.exports === undefined || pkg.exports === null) return null;
    return exportedFile(pkgDir, pkg.exports, name, subpath);
  }
  return null;
}

function exportedFile(pkgDir: string, exports: unknown, name: string, subpath: string): string {
  const target = exportTarget(exports, subpath);
  if (target === null) {
    throw new TypeError(`Package subpath '${subpath}' is not exported by '${name}' (${join(pkgDir, 'package.json')}) under the conditions ${[...conditions()].join(', ')}`);
  }
  return resolvePath(pkgDir, target);
}

/** The file an "exports" field maps `subpath` to under the import conditions (see conditions()), or null. */
function exportTarget(exports: unknown, subpath: string): string | null {
  const isSubpathMap = typeof exports === 'object' && exports !== null && !Array.isArray(exports) && Object.keys(exports).some((k) => k.startsWith('.'));
  if (!isSubpathMap) return subpath === '.' ? conditionalTarget(exports, '') : null;
  const map = exports as Record<string, unknown>;
  if (Object.hasOwn(map, subpath) && !subpath.includes('*')) return conditionalTarget(map[subpath], '');
  // Patterns ("./features/*.js"), in Node's order: the longer part before the
  // '*' first, then the longer key; the '*' matches at least one character.
  let best: { key: string; match: string } | null = null;
  for (const key of Object.keys(map)) {
    const star = key.indexOf('*');
    if (star < 0 || key.indexOf('*', star + 1) >= 0) continue;
    const prefix = key.slice(0, star);
    const suffix = key.slice(star + 1);
    if (subpath.length < key.length || !subpath.startsWith(prefix) || !subpath.endsWith(suffix)) continue;
    const better = best === null || star > best.key.indexOf('*') || (star === best.key.indexOf('*') && key.length > best.key.length);
    if (better) best = { key, match: subpath.slice(prefix.length, subpath.length - suffix.length) };
  }
  return best === null ? null : conditionalTarget(map[best.key], best.match);
}

function conditionalTarget(target: unknown, match: string): string | null {
  if (typeof target === 'string') return target.replaceAll('*', match);
  if (Array.isArray(target)) {
    for (const t of target) {
      const r = conditionalTarget(t, match);
      if (r !== null) return r;
    }
    return null;
  }
  if (typeof target === 'object' && target !== null) {
    for (const [cond, t] of Object.entries(target)) {
      if (!conditions().has(cond)) continue;
      const r = conditionalTarget(t, match);
      if (r !== null) return r;
    }
  }
  return null;
}

/**
 * What a function's source text is when it cannot be compiled into that
 * function elsewhere (compileSource), or null. A getter's or setter's text
 * (`get g() {...}`) compiles only as an object member, whose value is then
 * not the function; a private method's (`#m() {...}`) only inside its class.
 */
function unsendableSource(source: string): string | null {
  if (/^(?:async\s*)?(?:\*\s*)?#/.test(source)) return 'a private method';
  const accessor = /^(get|set)(?![\p{ID_Continue}$\u200c\u200d])\s*/u.exec(source);
  // `get(x) {...}` is a method named get, `get => ...` an arrow: the next character says which.
  if (accessor !== null && !/^[(=]/.test(source.slice(accessor[0].length))) return accessor[1] === 'get' ? 'a getter' : 'a setter';
  return null;
}

/** Validates a target (a function or { module, export }) and turns it into something that can travel. */
export function describeTask(target: unknown, what: string): TaskTarget {
  if (isTaskHandle(target)) return { kind: 'module', url: resolveModule(target.module, null, what), export: target.export };
  if (typeof target === 'function') {
    const source = Function.prototype.toString.call(target);
    if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
      throw new TypeError(`Expected "${what}" to be a function written in JavaScript; a native or bound function has no source text to send to another process (wrap it: (x) => ...)`);
    }
    if (/^class\b/.test(source)) throw new TypeError(`Expected "${what}" to be a function, got a class`);
    const unsendable = unsendableSource(source);
    if (unsendable !== null) {
      const shown = source.length > 40 ? `${source.slice(0, 40)}...` : source;
      throw new TypeError(`Expected "${what}" to be a function, got ${unsendable} (${JSON.stringify(shown)}): ` +
        'its source text does not make a function in another process. Pass an ordinary function or method, ' +
        "or a module target { module: import.meta.url, export: 'name' }");
    }
    return { kind: 'source', source };
  }
  if (typeof target === 'object' && target !== null && 'module' in target) {
    const t = target as { module: unknown; export?: unknown };
    // A misspelt "export" would otherwise run the default export.
    checkOptionNames(t, ['module', 'export'], `"${what}" ({ module, export })`);
    if (typeof t.module !== 'string' && !(t.module instanceof URL)) {
      throw new TypeError(`Expected "${what}.module" to be a path, package name or URL, got ${describeValue(t.module)}`);
    }
    const exp = t.export ?? 'default';
    if (typeof exp !== 'string' || exp === '') throw new TypeError(`Expected "${what}.export" to be an export name, got ${describeValue(t.export)}`);
    return { kind: 'module', url: resolveModule(t.module as string | URL, callerFile, what), export: exp };
  }
  throw new TypeError(`Expected "${what}" to be a function or { module, export }, got ${describeValue(target)}`);
}

/**
 * Helpers that compilers write into a function's own text and define at the
 * top of its file, where a function sent as source cannot see them: esbuild's
 * keepNames (tsx, vitest) wraps every inner named function and class in
 * `__name(fn, "name")`; tsc's CommonJS output turns `await import('x')` into
 * `__importStar(require('x'))` (`__importDefault` for default imports).
 */
const compilerHelpers: Record<string, unknown> = {
  __name: (f: unknown, name: string): unknown => {
    try {
      Object.defineProperty(f, 'name', { value: name, configurable: true });
    } catch {
      // not ours to name
    }
    return f;
  },
  __importDefault: (m: { __esModule?: boolean } | null): unknown => (m?.__esModule ? m : { default: m }),
  __importStar: (m: { __esModule?: boolean } | null): unknown => (m?.__esModule ? m : { ...m, default: m }),
};
const helperNames = Object.keys(compilerHelpers);
const helperValues = Object.values(compilerHelpers);

/**
 * Node's default ESM loader for import() in compiled code, resolving relative
 * specifiers against the code's filename (Node >= 20.12; experimental).
 */
const kMainLoader = (vm.constants as unknown as { USE_MAIN_CONTEXT_DEFAULT_LOADER?: symbol } | undefined)?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
let experimentalWarningMuted = false;

/**
 * Compiles a function target's body. With `new Function` (in this module), an
 * import() in the target resolved against this library's files
 * ('./tasks.mjs' -> node_modules/multiproc/dist/cjs/tasks.mjs) while its
 * require() resolved against `cwd`: both now resolve against `cwd`.
 */
function compileBody(body: string, cwd: string): (...args: unknown[]) => unknown {
  if (kMainLoader === undefined) return new Function('require', ...helperNames, body) as (...args: unknown[]) => unknown;
  if (!experimentalWarningMuted) {
    // Node warns once per process that the option is experimental; in a
    // child that only runs a function target, the warning is ours, not the user's.
    experimentalWarningMuted = true;
    const emit = process.emitWarning;
    process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
      const text = typeof warning === 'string' ? warning : warning?.message;
      if (typeof text === 'string' && text.includes('USE_MAIN_CONTEXT_DEFAULT_LOADER')) return;
      (emit as (...a: unknown[]) => void).call(this, warning, ...rest);
    } as typeof process.emitWarning;
  }
  return vm.compileFunction(body, ['require', ...helperNames], {
    filename: join(cwd, '[multiproc function target]'),
    importModuleDynamically: kMainLoader as unknown as vm.CompileFunctionOptions['importModuleDynamically'],
  }) as (...args: unknown[]) => unknown;
}

function compileSource(source: string, cwd: string): (...args: unknown[]) => unknown {
  const req = requireFrom(cwd);
  let fn: unknown;
  try {
    fn = compileBody(`return (${source}\n);`, cwd)(req, ...helperValues);
  } catch {
    // Method shorthand (`name(a) { ... }`) is not an expression; as an object member it is.
    try {
      fn = Object.values(compileBody(`return ({ ${source}\n });`, cwd)(req, ...helperValues) as Record<string, unknown>)[0];
    } catch (e) {
      if (/\bimport\s*\.\s*meta\b/.test(source)) {
        // (The error of the second form, "Unexpected token", said nothing of it.)
        throw new ProcessError("The function uses import.meta, which exists only in a module: a function target is compiled on its own in the child, with no module around it. Pass what you need as an argument (import.meta.url, say), or use a module target { module: import.meta.url, export: 'name' } (or defineTask)", { cause: e });
      }
      throw new ProcessError(`The function's source text does not compile in the child: ${(e as Error).message}`, { cause: e });
    }
  }
  if (typeof fn !== 'function') throw new ProcessError("The function's source text did not evaluate to a function");
  return fn as (...args: unknown[]) => unknown;
}

/**
 * A function target's require(): from the parent's cwd, as the parent's own
 * require() of a package would, except for this library's own name, which is
 * the copy running here wherever the cwd is (from `/`, the README's demo
 * failed with "Cannot find module 'multiproc'").
 */
function requireFrom(cwd: string): NodeJS.Require {
  const base = createRequire(`${cwd}/`);
  const own = (id: string): unknown => (id === 'multiproc' ? require('./index') : base(id));
  return Object.assign(own, { resolve: base.resolve, cache: base.cache, extensions: base.extensions, main: base.main }) as NodeJS.Require;
}

/** Whether this process runs ESM loader hooks (`--import`, `--loader`, `--experimental-loader`). */
export function usesLoaderHooks(): boolean {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return flags.some((f) => /^--(import|loader|experimental-loader)(=|$)/.test(f));
}

const libUrl = `${pathToFileURL(libDir).href}/`; // real path: what a child loads (paths.ts)

const libraryModules = new Map<string, unknown>();

/**
 * require() of one of this library's entry modules, by URL, cached here: the
 * zygote's warm-up loads the pool worker's entry through this, so a forked
 * worker finds it without require's path resolution (its stat and realpath
 * calls and cache writes cost a new worker 1-2 ms of CPU and ~20 page faults).
 */
function libraryModule(url: string): unknown {
  let m = libraryModules.get(url);
  if (m === undefined) {
    m = require(fileURLToPath(url)) as unknown;
    libraryModules.set(url, m);
  }
  return m;
}

/** This library's own entry modules (CommonJS): loaded with require, which needs no loader hooks. */
function isLibraryModule(url: string): boolean {
  return url.startsWith(libUrl) && url.endsWith('.js');
}

/**
 * Refuses, in the parent, a module target that a forked child could not
 * import: with ESM loader hooks in use, import() goes through the hooks'
 * thread, which a fork child does not have, and waits forever.
 */
export function checkForkedImport(target: TaskTarget, forked: boolean, what: string): void {
  if (!forked || target.kind !== 'module' || isLibraryModule(target.url) || !usesLoaderHooks()) return;
  throw new ProcessError(
    `${what} is a module target (${target.url}), which a forkserver or fork child cannot import while ESM loader hooks ` +
      'are in use (--import/--loader in execArgv or NODE_OPTIONS): the hooks run on a loader thread that a forked child ' +
      "does not have, so import() would wait forever. Use the 'spawn' start method (the default when loader hooks are in use), " +
      'or a function target.',
  );
}

/** In the child: the callable a target names. */
export async function loadTask(target: TaskTarget, cwd = process.cwd()): Promise<(...args: unknown[]) => unknown> {
  if (target.kind === 'source') return compileSource(target.source, cwd);
  const ns = (isLibraryModule(target.url) ? libraryModule(target.url) : await importTarget(target.url)) as Record<string, unknown>;
  let fn = ns[target.export];
  if (typeof fn !== 'function' && typeof ns.default === 'object' && ns.default !== null) {
    fn = (ns.default as Record<string, unknown>)[target.export]; // CJS exports the lexer missed
  }
  if (typeof fn !== 'function') {
    // A defineTask() handle exported under another name than the one it carries
    // (export const fibTask = defineTask(import.meta.url, function fib() {...})).
    fn = Object.values(ns).find((v) => isTaskHandle(v) && v.export === target.export);
  }
  if (typeof fn !== 'function') {
    // What it does export, with the functions of an object default export
    // (module.exports = { add, mul }) named as the user would write them.
    const names = Object.keys(ns);
    const dflt = ns.default;
    if (typeof dflt === 'object' && dflt !== null) {
      for (const [k, v] of Object.entries(dflt as Record<string, unknown>)) if (typeof v === 'function' && !names.includes(k)) names.push(`default.${k}`);
    }
    const hint = names.length === 0
      ? ': it exports nothing. Was it bundled into another file (esbuild, webpack, rollup)? A task or target module must stay a file of its own that exports the function: make it an entry point of the bundle, or leave it out of the bundle and ship it beside it'
      : ` (exports: ${names.join(', ')})`;
    throw new ProcessError(`Module ${target.url} has no function export '${target.export}'${hint}`);
  }
  return fn as (...args: unknown[]) => unknown;
}

/**
 * The target module a child is importing right now (a global: any copy of
 * the library sees it). While it is set, starting a process or a pool is
 * refused: that is the module's top level running again in the child, and
 * every child would start more, without end (Python's "bootstrapping phase"
 * RuntimeError guards the same thing).
 */
const kImportingTarget: unique symbol = Symbol.for('multiproc.importingTarget');
const importing = globalThis as unknown as Record<symbol, string | undefined>;

async function importTarget(url: string): Promise<unknown> {
  importing[kImportingTarget] = url;
  try {
    try {
      return await import(url);
    } catch (e) {
      const viaRequire = requireHooked(url, e);
      if (viaRequire === undefined) throw explainImportError(url, e);
      return viaRequire.ns;
    }
  } finally {
    importing[kImportingTarget] = undefined;
  }
}

/**
 * import()'s own errors name neither the target nor how it was found: a
 * module not found says where a relative path was resolved from, and a
 * syntax error in the module names its file (V8's SyntaxError does not).
 */
function explainImportError(url: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' && url.startsWith('file:') && (e as Error).message.includes(fileURLToPath(url))) {
    // require()'s habit: a path without its extension, which import() does
    // not add (before: the message only blamed where the path was resolved).
    const path = fileURLToPath(url);
    // (Not only for a name without a dot: `./task.worker` names task.worker.mjs too; review helper-75.)
    const withExt = existsSync(path) ? undefined : ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'].find((x) => existsSync(path + x));
    if (withExt !== undefined) {
      return new ProcessError(`Cannot find the task or target module ${path}: module paths need their extension (import() adds none, as require() did): name '${basename(path)}${withExt}'`, { cause: e });
    }
    return new ProcessError(
      `Cannot find the task or target module ${path}. A relative module path is resolved against the file that called ` +
        "Process/Pool (not the working directory, nor a helper module that passes it on): pass new URL('./file.mjs', import.meta.url) from the file " +
        'that knows where it is, or an absolute path',
      { cause: e },
    );
  }
  if (e instanceof SyntaxError && !e.message.includes(url) && url.startsWith('file:')) {
    return new SyntaxError(`${e.message} (in the task or target module ${fileURLToPath(url)})`, { cause: e });
  }
  const pkg = url.startsWith('@') ? url.split('/').slice(0, 2).join('/') : url.split('/')[0]!;
  if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && !/^(file|data|node):/.test(url) && (e as Error).message.includes(`'${pkg}`)) {
    // Node's message named this library's file as the importer.
    return new ProcessError(
      `Cannot find the task or target module ${JSON.stringify(url)}: a module path that does not start with './', '../' or '/' is a package name, ` +
        "looked up from the calling file's node_modules. For a file, write './' before it (relative to the file that called Process/Pool) or an absolute path",
      { cause: e },
    );
  }
  if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?ts$/.test(url)) {
    return new ProcessError(
      `Cannot import the TypeScript task or target module ${url.startsWith('file:') ? fileURLToPath(url) : url}: this Node runs no TypeScript loader. ` +
        'Run the program under one (node --import tsx; Node >= 22.6: --experimental-strip-types), which children inherit, or point the task at the compiled .js',
      { cause: e },
    );
  }
  return e;
}

/**
 * A module import() cannot load for its file extension, loaded with require()
 * instead when a CommonJS-only hook taught require() that extension
 * (`node --require tsx/cjs main.ts`, ts-node's register): such a hook does
 * not reach import(). Undefined when require cannot help either (no hook for
 * the extension), and the caller keeps import()'s error; a hook that knows
 * the extension makes require()'s error the module's own (it threw at its top
 * level, a syntax error), so that one is thrown.
 */
function requireHooked(url: string, importError: unknown): { ns: Record<string, unknown> } | undefined {
  if ((importError as NodeJS.ErrnoException | null)?.code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !url.startsWith('file:')) return undefined;
  const file = fileURLToPath(url);
  // require.extensions is Module._extensions: where such hooks register.
  if (!Object.hasOwn(require.extensions, extname(file))) return undefined;
  const exports = require(file) as unknown;
  // Shaped as import() shapes a CommonJS module: its exports plus default, the
  // compiled `export default` when the module says it was ESM (__esModule).
  if ((typeof exports !== 'object' && typeof exports !== 'function') || exports === null) return { ns: { default: exports } };
  const named = exports as Record<string, unknown>;
  return { ns: { ...named, default: named.__esModule === true ? named.default : exports } };
}

/** Throws if this child is importing its target module (see kImportingTarget); `what` names the call. */
export function refuseWhileImportingTarget(what: string): void {
  const url = importing[kImportingTarget];
  if (url === undefined) return;
  throw new ProcessError(
    `${what} was called while this child process was importing its target module ${url}: the module's top level ` +
      'runs again in every child that imports it, so each child would start more processes, without end. ' +
      'Run the code that starts processes only in the main process: `if (mp.parentProcess() === null) { ... }` ' +
      "(Python's `if __name__ == '__main__':`), or move the target or task to a module of its own.",
  );
}

/**
 * A ReferenceError from a function sent as source almost always means it
 * used an outer variable: say so. `how` names the mechanism, e.g. "Under the
 * 'spawn' start method a function target".
 */
export function explainReferenceError(err: unknown, how: string): unknown {
  try {
    return explainUnsafe(err, how);
  } catch {
    return err; // a thrown Proxy or odd object: wire() describes it as it can
  }
}

function explainUnsafe(err: unknown, how: string): unknown {
  if (!(err instanceof ReferenceError)) return err;
  // (__dirname and __filename are outer variables like any other.)
  const helper = /^(__(?!dirname\b|filename\b)\w+) is not defined/.exec(err.message)?.[1];
  if (helper !== undefined && helper.startsWith('__vite_ssr_')) {
    return new ProcessError(
      `${err.message}. ${how} is sent to the child as source text, and vitest (vite's module runner) rewrote its ` +
        `import() or import.meta into ${helper}, which exists only inside vitest's runner. Use require('...') inside ` +
        "the function, or a module target { module: './file.js', export: 'name' } that the child imports whole.",
      { cause: err },
    );
  }
  if (helper !== undefined) {
    return new ProcessError(
      `${err.message}. ${how} is sent to the child as source text, and ${helper} is a helper that your compiler ` +
        '(tsc, esbuild/tsx, Babel...) wrote into the function and defines elsewhere in its file. ' +
        'Compile for a newer target (ES2022: no async or generator helpers), or use a module target ' +
        "{ module: import.meta.url, export: 'name' } (or defineTask), which the child imports whole.",
      { cause: err },
    );
  }
  return new ProcessError(
    `${err.message}. ${how} is sent to the child as source text, so it must be self-contained: ` +
      'it cannot use variables, imports or functions from outside its own body. ' +
      "Import what it needs inside the function (await import('...') or require('...')), pass values as arguments, " +
      "or use a module target { module: import.meta.url, export: 'name' }. " +
      // pool.apply(process.cwd), the port of Python's apply_async(os.getpid): Node's own function is not self-contained either (helper-68).
      'A function of Node or of a library passed as the task itself (process.cwd) is not self-contained either: wrap the call, () => process.cwd().',
    { cause: err },
  );
}
