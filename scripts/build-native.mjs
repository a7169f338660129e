// `npm run build`'s native step for developers: an incremental `node-gyp build`
// once configured, so a change under native/ is always compiled. (The package's
// install script stays `node-gyp-build`, which keeps any existing binary: right
// for users, a stale-addon trap while working on native/.)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const configured = existsSync(new URL('../build/Makefile', import.meta.url)) || existsSync(new URL('../build/binding.sln', import.meta.url));
const args = configured ? ['build'] : ['rebuild'];
const r = spawnSync(process.platform === 'win32' ? 'npx.cmd' : 'npx', ['--no-install', 'node-gyp', ...args], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
