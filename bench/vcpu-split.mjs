// Are the CPUs equally fast side by side? Two plain node processes (no
// multiproc) run the same 24 x fib(29), started together at an agreed
// instant after their warm-up; each prints its own time. The pool bench's
// ceiling row is computed from the same kind of pair.
// Standalone, not a bench topic: node bench/vcpu-split.mjs [rounds]
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const fibUrl = pathToFileURL(fileURLToPath(new URL('./peers/task-fib.mjs', import.meta.url))).href;
for (let r = 0; r < Number(process.argv[2] ?? 4); r++) {
  const startAt = Date.now() + 600;
  const code = `import(${JSON.stringify(fibUrl)}).then(({ default: fib }) => {
    fib(25);
    while (Date.now() < ${startAt});
    const t = performance.now();
    for (let i = 0; i < 24; i++) fib(29);
    process.stdout.write((performance.now() - t).toFixed(0));
  });`;
  const ms = await Promise.all([0, 1].map(() => new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', () => resolve(out));
  })));
  console.log(`the two processes: ${ms.join(' ms and ')} ms`);
}
