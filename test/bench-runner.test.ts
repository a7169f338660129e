// The benchmark harness (bench/run.mjs, bench/lib/report.mjs): comparisons, targets, and a run that goes on
// past failing topics. No timing is asserted: the topics here return fixed numbers.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM JS without types
import { compare, fmtValue, normalizeRows } from '../bench/lib/report.mjs';
import { runNode } from './helpers';

const runner = fileURLToPath(new URL('../bench/run.mjs', import.meta.url));

interface Row {
  name: string;
  verdict: string;
  ratio: number | null;
  met: boolean | null;
  targetText: string;
  better: string;
}

const byName = (rows: Row[], name: string): Row => rows.find((r) => r.name === name)!;

describe('bench report', () => {
  it('compares each row with its group baseline in the right direction', () => {
    const { rows } = normalizeRows([
      { group: 'lat', name: 'floor', value: 10, unit: 'ns/op', better: 'lower', baseline: true },
      { group: 'lat', name: 'slow', value: 25, unit: 'ns/op', better: 'lower' },
      { group: 'lat', name: 'fast', value: 5, unit: 'ns/op', better: 'lower' },
      { group: 'tput', name: 'peer', value: 1000, unit: 'items/s', better: 'higher', baseline: true },
      { group: 'tput', name: 'ours', value: 12400, unit: 'items/s', better: 'higher' },
    ]);
    compare(rows);
    expect(byName(rows, 'floor').verdict).toBe('baseline');
    expect(byName(rows, 'slow').ratio).toBe(2.5);
    expect(byName(rows, 'slow').verdict).toBe('2.50x slower');
    expect(byName(rows, 'fast').verdict).toBe('2.00x faster');
    expect(byName(rows, 'ours').verdict).toBe('12.4x faster');
  });

  it('evaluates ratio and absolute targets', () => {
    const { rows } = normalizeRows([
      { group: 'g', name: 'floor', value: 10, unit: 'ns/op', better: 'lower', baseline: true },
      { group: 'g', name: 'python', value: 300, unit: 'ns/op', better: 'lower' },
      { group: 'g', name: 'ok', value: 19, unit: 'ns/op', better: 'lower', target: { ratio: 2, vs: 'floor' } },
      { group: 'g', name: 'too slow', value: 21, unit: 'ns/op', better: 'lower', target: { ratio: 2, vs: 'floor' } },
      { group: 'g', name: '5x faster than python', value: 61, unit: 'ns/op', better: 'lower', target: { ratio: 0.2, vs: 'python' } },
      { group: 'g', name: 'absolute', value: 11, unit: 'ns/op', better: 'lower', target: { max: 10 } },
      { group: 'g', name: 'free text', value: 11, unit: 'ns/op', better: 'lower', target: 'looks fine' },
      { group: 'h', name: 'rate', value: 2.5e6, unit: 'items/s', better: 'higher', target: { min: 2.3e6 } },
    ]);
    const warnings = compare(rows);
    expect(warnings).toEqual([]);
    expect(byName(rows, 'ok').met).toBe(true);
    expect(byName(rows, 'too slow').met).toBe(false);
    expect(byName(rows, '5x faster than python').met).toBe(false);
    expect(byName(rows, '5x faster than python').targetText).toBe('≥ 5x faster than python');
    expect(byName(rows, 'absolute').met).toBe(false);
    expect(byName(rows, 'free text').met).toBe(null);
    expect(byName(rows, 'rate').met).toBe(true);
  });

  it('infers the direction from the unit, and rejects rows it cannot read', () => {
    const { rows, warnings } = normalizeRows([{ group: 'g', name: 'n', value: 3, unit: 'tasks/s' }]);
    expect(rows[0].better).toBe('higher');
    expect(warnings).toHaveLength(1);
    expect(() => normalizeRows([{ group: 'g', name: 'n', value: 'fast', unit: 'ms' }])).toThrow(/"value" must be a finite number/);
    expect(() => normalizeRows([{ group: 'g', name: 'n', value: 1, unit: 'widgets' }])).toThrow(/"better"/);
    expect(() => normalizeRows({})).toThrow(/array of rows/);
  });

  it('formats values with 3 significant digits', () => {
    expect(fmtValue(0.5041)).toBe('0.504');
    expect(fmtValue(12345)).toBe('12,345');
    expect(fmtValue(5.3e6)).toBe('5.30M');
    expect(fmtValue(null)).toBe('n/a');
  });
});

describe('bench runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'multiproc-bench-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports failing topics, runs the others, and exits 1', async () => {
    writeFileSync(join(dir, 'a-ok.bench.mjs'), `export const title = 'OK';
export async function run(ctx) {
  ctx.log('working'); ctx.progress(0.5);
  return [
    { group: 'g', name: 'base', value: 2, unit: 'ns/op', better: 'lower', baseline: true },
    { group: 'g', name: 'x', value: 4, unit: 'ns/op', better: 'lower', target: { ratio: 3, vs: 'base' } },
  ];
}`);
    writeFileSync(join(dir, 'b-throws.bench.mjs'), `export async function run() { throw new Error('deliberate failure'); }`);
    writeFileSync(join(dir, 'c-dies.bench.mjs'), `export async function run() { process.kill(process.pid, 'SIGKILL'); await new Promise(() => {}); }`);
    writeFileSync(join(dir, 'd-bad-rows.bench.mjs'), `export async function run() { return [{ group: 'g', name: 'n', value: NaN, unit: 'ms' }]; }`);
    writeFileSync(join(dir, 'e-ok-after.bench.mjs'), `export async function run() { return [{ group: 'g', name: 'only', value: 1, unit: 'ms', better: 'lower', baseline: true }]; }`);
    const out = join(dir, 'results');
    const r = await runNode(runner, [`--dir=${dir}`, `--out=${out}`, '--no-python', '--timeout=20'], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
    const status = Object.fromEntries(report.topics.map((t: { name: string; status: string }) => [t.name, t.status]));
    expect(status).toEqual({ 'a-ok': 'ok', 'b-throws': 'failed', 'c-dies': 'failed', 'd-bad-rows': 'failed', 'e-ok-after': 'ok' });
    const topic = (name: string) => report.topics.find((t: { name: string }) => t.name === name);
    expect(topic('b-throws').error).toBe('deliberate failure');
    expect(topic('c-dies').error).toMatch(/SIGKILL/);
    expect(topic('d-bad-rows').error).toMatch(/finite number/);
    const x = topic('a-ok').rows.find((row: Row) => row.name === 'x');
    expect(x.met).toBe(true);
    expect(x.verdict).toBe('2.00x slower');
    expect(report.command).toContain('--no-python');
    expect(report.machine.node).toBe(process.version);
    const md = readFileSync(join(out, 'latest.md'), 'utf8');
    expect(md).toContain('| x | 4 | ns/op | 2.00x slower | ≤ 3x base | yes (2.00x) |');
    expect(md).toContain('**Failed**');
    expect(r.stdout).toContain('2/5 topics ok; FAILED: b-throws, c-dies, d-bad-rows');
  });

  it('rejects an unknown topic with the list of topics', async () => {
    const r = await runNode(runner, ['no-such-topic', '--list-nothing']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--list-nothing'/);
    const r2 = await runNode(runner, ['no-such-topic']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/no topic 'no-such-topic'; topics: .*foundation/);
  });
});
