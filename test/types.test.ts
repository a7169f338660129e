import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture } from './helpers';

/** What tsc -p reports for a project under test/ ('' when it compiles). */
function tscErrors(project: string): string {
  try {
    execFileSync(process.execPath, [join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc'), '-p', fixture(project)], { encoding: 'utf8' });
    return '';
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? e);
  }
}

describe('public types', () => {
  it('defineTask carries argument and result types to Pool and Process (tsc on test/types/tasks.mts)', () => {
    // Every @ts-expect-error there must be an error and everything else must compile.
    expect(tscErrors('../types/tsconfig.json')).toBe('');
  });

  it("a consumer project with TypeScript 6+'s defaults (no \"types\" field, no skipLibCheck) type-checks: the declarations load @types/node themselves (before: Cannot find name 'Buffer', global type 'AsyncDisposable')", () => {
    expect(tscErrors('../types/default-types/tsconfig.json')).toBe('');
  });

  it('the CommonJS build has a default export, as the ESM face: `import mp from \'multiproc\'` compiled to CommonJS reads require(\'multiproc\').default (before: undefined)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cjs = require('multiproc') as typeof import('multiproc') & { default: typeof import('multiproc') };
    expect(typeof cjs.default.Pool).toBe('function');
    expect(cjs.default.Pool).toBe(cjs.Pool);
    expect(cjs.default.wait).toBe(cjs.wait);
  });
});
