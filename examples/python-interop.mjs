// Node and Python share one ShareableList (Python's own layout), and a
// supervisor waits on its workers' pipes and exits at once with mp.wait().
// Run: node examples/python-interop.mjs   (python3 must be on PATH)
import { spawn } from 'node:child_process';
import * as mp from 'multiproc';

// 1. A list both languages read and write.
const scores = mp.ShareableList.create([0, 0.0, 'pending', null]);
const py = `
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")  # Node owns it
sl[0] = sl[0] + 41
sl[1] = 2.5
sl[2] = "from py"
print("python saw", list(sl))
sl.shm.close()
`;
await new Promise((resolve, reject) => {
  const child = spawn('python3', ['-c', py, scores.shm.name], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('error', reject);
  child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`python3 exited ${code}`))));
});
scores.set(0, scores.get(0) + 1);
console.log('node saw', scores.toArray());
scores.close();
scores.unlink();

// 2. A supervisor loop: three workers report through pipes; wait() wakes on
// whichever has something to say, or has exited.
const workers = [];
const ends = [];
for (let i = 0; i < 3; i++) {
  const [reader, writer] = mp.Pipe(false);
  const p = new mp.Process({
    target: async (end, n) => {
      for (let k = 1; k <= n; k++) {
        await new Promise((r) => setTimeout(r, 20 * n));
        await end.send(`step ${k} of ${n}`);
      }
      end.close();
    },
    args: [writer, i + 1],
  });
  await p.start();
  writer.close(); // the child holds its own reference
  workers.push(p);
  ends.push(reader);
}
const open = new Set(ends);
let messages = 0;
while (open.size > 0) {
  for (const end of await mp.wait([...open])) {
    try {
      await end.recv();
      messages++;
    } catch (e) {
      if (!(e instanceof mp.EOFError)) throw e;
      open.delete(end); // that worker is done
      end.close();
    }
  }
}
await Promise.all(workers.map((p) => p.join()));
console.log(`received ${messages} messages from ${workers.length} workers; exit codes ${workers.map((p) => p.exitCode).join(', ')}`);
