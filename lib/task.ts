/**
 * Task references: what a Pool (or Process) runs in another process.
 *
 * A function travels as its source text and is compiled once in the worker,
 * so it must be self-contained (no closure over outer variables; import what
 * it needs inside its body). `{ module, export }` names a module export
 * instead: the worker imports the module (ESM or CJS) and calls the export.
 * A relative module path resolves against the file of the caller, as an
 * `import` in that file would.
 *
 * Exports: TaskTarget, describeTask, loadTask, explainReferenceError, callerFile.
 */
import { createRequire } from 'node:module';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ProcessError } from './errors';
import { describeValue } from './validate';

export type TaskTarget = { kind: 'source'; source: string } | { kind: 'module'; url: string; export: string };

const libDir = resolvePath(__dirname);

/** The file of the first stack frame outside this library. */
export function callerFile(): string | undefined {
  const stack = new Error().stack ?? '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?\/[^():]+)(?::\d+){0,2}\)?\s*$/.exec(line);
    if (m === null) continue;
    const file = m[1].startsWith('file:') ? fileURLToPath(m[1]) : m[1];
    if (file.startsWith(libDir)) continue;
    return file;
  }
  return undefined;
}

function moduleUrl(spec: string | URL, what: string): string {
  if (spec instanceof URL) return spec.href;
  if (typeof spec !== 'string' || spec === '') throw new TypeError(`Expected "${what}.module" to be a path, file URL or package name, got ${describeValue(spec)}`);
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) return spec; // file:, data:, node:
  if (isAbsolute(spec)) return pathToFileURL(spec).href;
  const from = callerFile() ?? resolvePath('index.js');
  if (spec.startsWith('./') || spec.startsWith('../')) return pathToFileURL(resolvePath(dirname(from), spec)).href;
  try {
    return pathToFileURL(createRequire(from).resolve(spec)).href;
  } catch (e) {
    throw new TypeError(`Cannot resolve module ${JSON.stringify(spec)} from ${from}; pass an absolute path or a file URL (e.g. new URL('./tasks.js', import.meta.url))`, { cause: e });
  }
}

/** Validates a task reference and turns it into something that can travel. */
export function describeTask(fn: unknown, what: string): TaskTarget {
  if (typeof fn === 'function') {
    const source = Function.prototype.toString.call(fn);
    if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
      throw new TypeError(`"${what}" is a built-in or bound function, which cannot be sent to another process; wrap it: (x) => ...`);
    }
    if (/^class[\s{]/.test(source)) throw new TypeError(`"${what}" is a class; pass a function or { module, export }`);
    return { kind: 'source', source };
  }
  if (typeof fn === 'object' && fn !== null && 'module' in fn) {
    const ref = fn as { module: string | URL; export?: unknown };
    const exp = ref.export ?? 'default';
    if (typeof exp !== 'string' || exp === '') throw new TypeError(`Expected "${what}.export" to be an export name, got ${describeValue(exp)}`);
    return { kind: 'module', url: moduleUrl(ref.module, what), export: exp };
  }
  throw new TypeError(`Expected "${what}" to be a function or { module, export }, got ${describeValue(fn)}`);
}

function compileSource(source: string): (...args: unknown[]) => unknown {
  const req = createRequire(resolvePath(process.cwd(), 'index.js'));
  let fn: unknown;
  try {
    fn = new Function('require', `return (${source}\n);`)(req);
  } catch {
    // Method shorthand (`name(a) { ... }`) is not an expression; as an object member it is.
    try {
      fn = Object.values(new Function('require', `return ({ ${source}\n });`)(req) as Record<string, unknown>)[0];
    } catch (e) {
      throw new ProcessError(`The task's source text does not compile in the worker: ${(e as Error).message}`, { cause: e });
    }
  }
  if (typeof fn !== 'function') throw new ProcessError("The task's source text did not evaluate to a function");
  return fn as (...args: unknown[]) => unknown;
}

/** In the worker: the callable a target names. */
export async function loadTask(target: TaskTarget): Promise<(...args: unknown[]) => unknown> {
  if (target.kind === 'source') return compileSource(target.source);
  const ns = (await import(target.url)) as Record<string, unknown>;
  let fn = ns[target.export];
  if (typeof fn !== 'function' && typeof ns.default === 'object' && ns.default !== null) {
    fn = (ns.default as Record<string, unknown>)[target.export]; // CJS exports the lexer missed
  }
  if (typeof fn !== 'function') {
    throw new ProcessError(`Module ${target.url} has no function export '${target.export}' (exports: ${Object.keys(ns).join(', ') || 'none'})`);
  }
  return fn as (...args: unknown[]) => unknown;
}

/** A ReferenceError from a function sent as source almost always means it used an outer variable. */
export function explainReferenceError(err: unknown): unknown {
  if (!(err instanceof ReferenceError)) return err;
  const e = new ReferenceError(
    `${err.message}. The task function was sent to another process as source text, so it must be self-contained: ` +
      'it cannot use variables, imports or functions from outside its own body. Import what it needs inside the ' +
      "function (await import('...')), pass values as arguments, or use { module, export }.",
  );
  e.stack = `${e.name}: ${e.message}\n${(err.stack ?? '').split('\n').slice(1).join('\n')}`;
  return e;
}
