/**
 * Runs one topic in its own process (started by bench/run.mjs), so that a crash, a hang or a leaked handle
 * in one topic cannot take the run down or skew the next topic's heap and JIT state.
 *
 * argv: <topic file> <options JSON>. Talks to the runner on fd 3, one JSON object per line:
 *   { type: 'log', msg } | { type: 'progress', fraction, label } | { type: 'result', title, rows } | { type: 'error', message, stack }
 */
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { normalizeRows } from './report.mjs';

const [file, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson);

function send(msg) {
  const line = `${JSON.stringify(msg)}\n`; // throws on a bigint value: reported as the topic's error
  try {
    writeSync(3, line);
  } catch {
    // The runner is gone; nothing useful left to do.
    process.exit(1);
  }
}

const ctx = Object.freeze({
  quick: options.quick,
  python: options.python,
  /** A status line for the progress display (not part of the report). */
  log(msg) {
    send({ type: 'log', msg: String(msg) });
  },
  /** Optional: how far the topic is, 0..1, with what it is doing now. */
  progress(fraction, label) {
    send({ type: 'progress', fraction: Number(fraction), label: label === undefined ? undefined : String(label) });
  },
});

let code = 0;
try {
  const mod = await import(pathToFileURL(file).href);
  if (typeof mod.run !== 'function') throw new TypeError(`${file} does not export run(ctx)`);
  // Checked here, before JSON turns NaN into null ("not measured") and drops undefined fields.
  const { rows, warnings } = normalizeRows(await mod.run(ctx));
  send({ type: 'result', title: typeof mod.title === 'string' ? mod.title : undefined, rows, warnings });
} catch (e) {
  send({ type: 'error', message: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
  code = 1;
}
// Leftover handles (servers, pools, timers) must not keep the topic alive once it has answered.
process.exit(code);
