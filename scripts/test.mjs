// `npm test`: runs the vitest suite and ends with one plain summary line
// ("N passed, N failed") that any CI log reader understands. The exit code is
// vitest's (which includes the global leak check in test/global-setup.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const out = join(tmpdir(), `multiproc-vitest-${process.pid}.json`);
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)];
const r = spawnSync('npx', args, { stdio: 'inherit' });
let summary = 'no test results were written';
if (existsSync(out)) {
  const j = JSON.parse(readFileSync(out, 'utf8'));
  rmSync(out, { force: true });
  summary = `${j.numPassedTests} passed, ${j.numFailedTests} failed`;
  if (j.numPendingTests + j.numTodoTests > 0) summary += `, ${j.numPendingTests + j.numTodoTests} skipped`;
}
console.log(`\ntests: ${summary}`);
process.exit(r.status ?? 1);
