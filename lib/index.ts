/// <reference types="node" preserve="true" />
// (Kept in the declarations: TypeScript 6+ loads no @types package unless
// asked, and these types name Node's: Buffer, NodeJS.Signals, Symbol.dispose.)
/**
 * multiproc: Python's multiprocessing for Node.js. See README.md and docs/*.md.
 *
 * The names are api.ts's; this module adds a default export of them all:
 * `import mp from 'multiproc'` type-checks in a CommonJS TypeScript project
 * (esModuleInterop) and compiles to require('multiproc').default, which was
 * undefined there (the ESM face has always had a default; helper-73).
 */
import * as api from './api';

export * from './api';
export default api;
