import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run against the built package (dist/), exactly what users get:
    // child processes started by the library run dist/cjs/entry/*.js.
    alias: { multiproc: fileURLToPath(new URL('./dist/esm/index.mjs', import.meta.url)) },
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more parallel files only make process-heavy tests fight for CPU.
    maxWorkers: 2,
    server: { deps: { external: [/dist\//] } },
  },
});
