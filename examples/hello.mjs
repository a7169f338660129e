// The first example: run with `npm run demo`. Grows as features land.
import { spawn } from 'node:child_process';
import * as mp from 'multiproc';

const counter = mp.RawValue('i', 0);
const handle = JSON.stringify(mp.toHandle(counter));
const child = spawn(process.execPath, ['--input-type=module', '-e', `
  import * as mp from 'multiproc';
  const v = mp.fromHandle(${handle});
  v.value += 41;
  console.log('child', process.pid, 'saw', v.value - 41, 'and added 41');
`], { stdio: 'inherit', cwd: new URL('..', import.meta.url) });
await new Promise((r) => child.on('exit', r));
counter.value += 1;
console.log('parent', process.pid, 'reads', counter.value);
counter.close();
