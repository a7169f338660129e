import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture } from './helpers';

describe('public types', () => {
  it('defineTask carries argument and result types to Pool and Process (tsc on test/types/tasks.mts)', () => {
    // Every @ts-expect-error there must be an error and everything else must compile.
    let out = '';
    try {
      execFileSync(process.execPath, [join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc'), '-p', fixture('../types/tsconfig.json')], { encoding: 'utf8' });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    expect(out).toBe('');
  });

  it("a consumer project with TypeScript 6+'s defaults (no \"types\" field, no skipLibCheck) type-checks: the declarations load @types/node themselves (before: Cannot find name 'Buffer', global type 'AsyncDisposable')", () => {
    let out = '';
    try {
      execFileSync(process.execPath, [join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc'), '-p', fixture('../types/default-types/tsconfig.json')], { encoding: 'utf8' });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    expect(out).toBe('');
  });

  it('the CommonJS build has a default export, as the ESM face: `import mp from \'multiproc\'` compiled to CommonJS reads require(\'multiproc\').default (before: undefined)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cjs = require('multiproc') as typeof import('multiproc') & { default: typeof import('multiproc') };
    expect(typeof cjs.default.Pool).toBe('function');
    expect(cjs.default.Pool).toBe(cjs.Pool);
    expect(cjs.default.wait).toBe(cjs.wait);
  });
});
