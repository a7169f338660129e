// What one fork costs on this machine, below anything multiproc does:
// 1. a bare fork() + _exit + waitpid of a `node --single-threaded` process
//    (the zygote's configuration), median of 3 x 20, in a subprocess;
// 2. the page faults a forkserver child has taken when its target runs
//    (`process.resourceUsage().minorPageFault`), four starts back to back
//    after the zygote settled: the first ones are its spares (their count
//    includes the warm-up rehearsal they ran before the request), the rest
//    are forked on demand.
// Standalone, not a bench topic: node bench/fork-floor.mjs
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

if (process.argv[2] === '--bare') {
  const { native } = createRequire(import.meta.url)('../dist/cjs/native.js');
  const rounds = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    for (let i = 0; i < 20; i++) {
      const pid = native.fork();
      if (pid === 0) native.exitNow(0);
      native.waitpid(pid, true);
    }
    rounds.push((performance.now() - t) / 20);
  }
  rounds.sort((a, b) => a - b);
  console.log(rounds[1].toFixed(2));
  process.exit(0);
}

const bare = execFileSync(process.execPath, ['--single-threaded', fileURLToPath(import.meta.url), '--bare'], { encoding: 'utf8' }).trim();
console.log(`bare fork() + _exit + waitpid of node --single-threaded: ${bare} ms (median of 3 x 20)`);

const faults = mp.RawArray('i', 1);
const report = (out) => { out.view[0] = process.resourceUsage().minorPageFault; };
const first = new mp.Process({ target: () => {} });
first.start();
await first.join();
await new Promise((r) => setTimeout(r, 1000)); // the zygote settles (code move, spares)
for (let i = 1; i <= 4; i++) {
  const p = new mp.Process({ target: report, args: [faults] });
  p.start();
  await p.join();
  console.log(`forkserver child, start ${i}: ${faults[0]} page faults when its target ran`);
}
faults.close();
