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
});
