// Backpressure: a producer that gets work faster than the pool can do it
// (here an async stream of log lines) waits at `await pool.submit()` while
// `maxPending` tasks are pending, so the backlog in memory stays bounded
// however long the stream is.
// Run: node examples/backpressure.mjs
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import * as mp from 'multiproc';

export const digest = mp.defineTask(import.meta.url, async function digest(line) {
  // Stands in for real work per line (parsing, hashing, compressing...).
  let h = line;
  for (let i = 0; i < 200; i++) h = createHash('sha256').update(h).digest('hex');
  return h.slice(0, 8);
});

/** An endless source, as a socket or a tail -f would be. */
async function* logLines() {
  for (let i = 0; ; i++) yield `GET /item/${i} 200`;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const pool = new mp.Pool({ processes: 2, maxPending: 8 });
  let done = 0;
  let mostPending = 0;
  const started = performance.now();
  for await (const line of logLines()) {
    const { result } = await pool.submit(digest, [line]); // waits while 8 are pending
    mostPending = Math.max(mostPending, pool.pending);
    result.then(() => done++, (e) => console.error(`${line}: ${e.message}`));
    if (performance.now() - started > 1000) break; // a second of the stream
  }
  await pool.drained();
  console.log(`submitted ${pool.stats().tasks.done + pool.pending} lines in ~1 s, at most ${mostPending} pending at once (maxPending 8)`);
  pool.close();
  await pool.join();
  console.log(`all ${done} results in; the stream never ran ahead of the pool`);
}
