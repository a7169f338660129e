import { constants } from 'node:buffer';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as mp from 'multiproc';
import { describe, expect, it } from 'vitest';
import { attachedSize, collect, fixture, hasPython, isLinux, runNode, segmentExists, sleep } from './helpers';

describe('SharedMemory', () => {
  it('creates a zeroed segment, mode 0600, with an unguessable short name', () => {
    const a = mp.SharedMemory.create(1000);
    const b = mp.SharedMemory.create(1000);
    try {
      expect(a.size).toBe(1000);
      expect(a.buffer.byteLength).toBe(1000);
      expect(new Uint8Array(a.buffer).every((x) => x === 0)).toBe(true);
      expect(a.name.length).toBeLessThanOrEqual(30);
      expect(a.name).not.toBe(b.name);
      expect(a.name).toMatch(/^[A-Za-z0-9_]+-[A-Za-z0-9_-]{16}$/);
      if (isLinux) expect(statSync(`/dev/shm/${a.name}`).mode & 0o777).toBe(0o600);
    } finally {
      a.close(); a.unlink(); b.close(); b.unlink();
    }
  });

  it('is shared with another process that attaches by name', async () => {
    const shm = mp.SharedMemory.create(16384); // a whole number of pages everywhere: macOS rounds sizes up
    try {
      new Uint8Array(shm.buffer)[0] = 42;
      const r = await runNode(fixture('shm-child.mjs'), [shm.name, '42']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ size: 16384 });
      const bytes = new Uint8Array(shm.buffer);
      expect(bytes[1]).toBe(0xab);
      expect(bytes[16383]).toBe(0xcd);
    } finally {
      shm.close();
      shm.unlink();
    }
  });

  it('keeps the name the user gave and refuses a name that exists', () => {
    const name = `${process.env.MULTIPROC_SHM_PREFIX}-given-${process.pid}`;
    const shm = mp.SharedMemory.create(16, { name });
    try {
      expect(shm.name).toBe(name);
      expect(() => mp.SharedMemory.create(16, { name })).toThrow(/already exists/);
      const again = mp.SharedMemory.attach(name);
      expect(again.size).toBe(attachedSize(16)); // macOS: a whole page
      again.close();
    } finally {
      shm.close();
      shm.unlink();
    }
    expect(() => mp.SharedMemory.attach(name)).toThrow(/No shared memory segment named/);
  });

  it.runIf(isLinux)('takes names up to Linux\'s NAME_MAX, 255 characters without the leading \'/\', as Python makes them (before: 254, and a Python segment of 255 was refused at attach)', () => {
    const name = `${process.env.MULTIPROC_SHM_PREFIX}-`.padEnd(255, 'n');
    const shm = mp.SharedMemory.create(16, { name });
    try {
      expect(shm.name).toBe(name);
      const again = mp.SharedMemory.attach(name);
      expect(again.size).toBe(16);
      again.close();
      expect(mp.SharedMemory.attach(`/${name}`).size).toBe(16);
    } finally {
      shm.close();
      shm.unlink();
    }
    expect(() => mp.SharedMemory.create(16, { name: `${name}x` })).toThrow(/at most 255 characters without the leading '\/', got 256/);
  });

  it.runIf(isLinux)('counts a name\'s 255 in bytes of UTF-8, as the OS does (before: 200 \'é\', 400 bytes, passed, and shm_open\'s EINVAL said the segment "cannot be mapped (is it empty?)")', () => {
    const prefix = `${process.env.MULTIPROC_SHM_PREFIX}-`;
    const fits = prefix.padEnd(255 - 2 * 120, 'n') + 'é'.repeat(120); // 255 bytes
    const shm = mp.SharedMemory.create(16, { name: fits });
    try {
      expect(mp.SharedMemory.attach(fits).size).toBe(16);
    } finally {
      shm.close();
      shm.unlink();
    }
    const over = `${prefix}${'é'.repeat(200)}`;
    for (const call of [() => mp.SharedMemory.create(16, { name: over }), () => mp.SharedMemory.attach(over)]) {
      expect(call).toThrow(RangeError);
      expect(call).toThrow(/at most 255 bytes of UTF-8 without the leading '\/', got 4\d\d bytes/);
    }
  });

  it('refuses a name with a lone surrogate (before: it reached the OS as U+FFFD, and \'\\ud800\' attached to the segment made as \'\\udc00\')', () => {
    const prefix = `${process.env.MULTIPROC_SHM_PREFIX}-`;
    for (const name of [`${prefix}\ud800`, `${prefix}a\udc00b`, `/${prefix}\udfff`]) {
      for (const call of [() => mp.SharedMemory.create(16, { name }), () => mp.SharedMemory.attach(name)]) {
        expect(call).toThrow(new TypeError(`Shared memory names must be well-formed Unicode (no lone surrogates), got ${JSON.stringify(name)}`));
      }
    }
    // A surrogate pair is one character, and fine.
    const pair = `${prefix}\ud83d\ude00`;
    const shm = mp.SharedMemory.create(16, { name: pair });
    try {
      const again = mp.SharedMemory.attach(pair);
      expect(again.size).toBe(16);
      again.close();
    } finally {
      shm.close();
      shm.unlink();
    }
  });

  it('a MULTIPROC_SHM_PREFIX that is not 1-8 of [A-Za-z0-9_] is named in a warning, once, and "mp" is used', async () => {
    const saved = process.env.MULTIPROC_SHM_PREFIX;
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      if ((w as Error & { code?: string }).code === 'MULTIPROC_SHM_PREFIX') warnings.push(w);
    };
    process.on('warning', onWarning);
    const made: mp.SharedMemory[] = [];
    try {
      process.env.MULTIPROC_SHM_PREFIX = 'bad-prefix';
      made.push(mp.SharedMemory.create(16), mp.SharedMemory.create(16));
      await sleep(10); // warnings are emitted on the next tick
      expect(made.map((m) => m.name.slice(0, 3))).toEqual(['mp-', 'mp-']);
      expect(warnings.map((w) => w.message)).toEqual(['MULTIPROC_SHM_PREFIX="bad-prefix" is not 1-8 characters of [A-Za-z0-9_]; segments are named "mp-..." instead']);
    } finally {
      process.env.MULTIPROC_SHM_PREFIX = saved;
      process.off('warning', onWarning);
      for (const m of made) {
        m.close();
        m.unlink();
      }
    }
  });

  it('rejects bad input with clear errors', () => {
    expect(() => mp.SharedMemory.create(-1)).toThrow(RangeError);
    expect(() => mp.SharedMemory.create(0)).toThrow(RangeError);
    expect(() => mp.SharedMemory.create(1.5)).toThrow(/integer/);
    expect(() => mp.SharedMemory.create('10' as unknown as number)).toThrow(TypeError);
    expect(() => mp.SharedMemory.create(10, { name: 'a/b' })).toThrow(/cannot contain '\/'/);
    // Before: ignored, and the segment got a generated name.
    const made: mp.SharedMemory[] = [];
    expect(() => made.push(mp.SharedMemory.create(10, { nmae: 'fxopt-x' } as never))).toThrow('Unknown option "nmae" for SharedMemory.create() (did you mean "name"?)');
    for (const m of made) (m.unlink(), m.close());
    expect(() => mp.SharedMemory.attach('')).toThrow(TypeError);
    // Before: create said "already exists; pick another name or attach to it", attach "cannot be mapped (is it empty?)".
    for (const name of ['.', '..', '/.', '/..']) {
      expect(() => mp.SharedMemory.create(10, { name })).toThrow(/cannot be '\.' or '\.\.'/);
      expect(() => mp.SharedMemory.attach(name)).toThrow(/cannot be '\.' or '\.\.'/);
    }
    expect(() => mp.ShareableList.create([1], { name: '.' })).toThrow(TypeError);
    expect(() => mp.SharedMemory.attach('mp-does-not-exist-xyz')).toThrow(/No shared memory segment named 'mp-does-not-exist-xyz'/);
  });

  it('`new` on a class only factories make is a TypeError naming the factory (before: a husk with no mapping, or an unrelated message later)', () => {
    const New = <A extends unknown[]>(cls: unknown, ...args: A) => new (cls as new (...a: A) => unknown)(...args);
    // Python's SharedMemory(create=True, size=10): before, an object whose name was that options object.
    expect(() => New(mp.SharedMemory, { create: true, size: 10 })).toThrow(/SharedMemory has no public constructor: use SharedMemory.create\(size/);
    expect(() => New(mp.SharedMemory, 'some-name')).toThrow(TypeError);
    expect(() => New(mp.Connection)).toThrow(/Connection has no public constructor: use Pipe\(\)/);
    expect(() => New(mp.SharedValue, 'i', 3)).toThrow(/SharedValue has no public constructor: use Value\(typecode, initial\)/);
    expect(() => New(mp.SharedArrayObject, 'i', 3)).toThrow(/SharedArrayObject has no public constructor: use SharedArray\(typecode/);
    // The factories themselves still work with `new` (a function returning an object).
    const v = New(mp.Value, 'i', 3) as mp.SharedValue<'i'>;
    expect(v.value).toBe(3);
    v.close();
  });

  it('makes use after close() an error, and views empty, never a crash', () => {
    const shm = mp.SharedMemory.create(64);
    const view = new Uint8Array(shm.buffer);
    shm.close();
    expect(view.length).toBe(0);
    expect(() => shm.buffer).toThrow(/closed/);
    expect(() => shm.buffer).toThrow(mp.ClosedError);
    expect(mp.toHandle(shm)).toEqual({ __multiproc__: 'SharedMemory', name: shm.name }); // closed here, still there to attach
    shm.unlink();
    expect(() => mp.SharedMemory.attach(shm.name)).toThrow(/No shared memory/);
    expect(() => mp.toHandle(shm)).toThrow(/was unlinked by this object/); // before: a handle no one could attach
  });

  it.runIf(isLinux)('close() unmaps at once: an unlinked segment\'s memory is given back without waiting for GC', () => {
    const mapped = (name: string) => readFileSync('/proc/self/maps', 'latin1').includes(`/dev/shm/${name}`);
    const shm = mp.SharedMemory.create(16 << 20);
    new Uint8Array(shm.buffer).fill(1);
    expect(mapped(shm.name)).toBe(true);
    shm.close();
    shm.unlink();
    expect(mapped(shm.name)).toBe(false); // before: mapped (and its 16 MB in /dev/shm's tmpfs) until a GC
  });

  it('shares bytes with Python multiprocessing.shared_memory both ways', async () => {
    // python3 is on every machine this project targets (Linux CI, macOS runners).
    expect(await hasPython()).toBe(true);
    const ours = mp.SharedMemory.create(256);
    try {
      new Uint8Array(ours.buffer).set([1, 2, 3]);
      const py = `
import sys
from multiprocessing import shared_memory, resource_tracker
a = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(a._name, "shared_memory")  # we do not own it
print(bytes(a.buf[:3]).hex())
a.buf[3] = 99
a.close()
b = shared_memory.SharedMemory(create=True, size=100, name=sys.argv[2])
b.buf[:4] = b"pyok"
resource_tracker.unregister(b._name, "shared_memory")  # the JS side unlinks it
b.close()
`;
      const pyName = `${process.env.MULTIPROC_SHM_PREFIX}-py${process.pid}`;
      const r = await collect(spawn('python3', ['-c', py, ours.name, pyName], { stdio: ['ignore', 'pipe', 'pipe'] }));
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('010203');
      expect(new Uint8Array(ours.buffer)[3]).toBe(99);
      const theirs = mp.SharedMemory.attach(pyName);
      expect(Buffer.from(theirs.buffer, 0, 4).toString()).toBe('pyok');
      theirs.close();
      theirs.unlink();
    } finally {
      ours.close();
      ours.unlink();
    }
  });

  // Node 22+ allows ArrayBuffers far larger (2^53 - 1): there only the memory limits apply.
  it.runIf(constants.MAX_LENGTH <= 2 ** 32)('a segment larger than one ArrayBuffer may be (4 GiB on Node 20) is a RangeError to create or attach, not an abort', async () => {
    const name = `${process.env.MULTIPROC_SHM_PREFIX}-huge${process.pid}`;
    let r;
    try {
      r = await runNode(fixture('shm-too-large.cjs'), [name]);
    } finally {
      rmSync(`/dev/shm/${name}`, { force: true }); // the fixture's own clean-up does not run if it aborts
    }
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0); // before: 134, "free(): double free detected"
    const tooLarge = 'RangeError ERR_MULTIPROC_MAPPING_TOO_LARGE';
    const expected: Record<string, string> = { create: tooLarge, rawArray: tooLarge, sharedArray: tooLarge };
    if (isLinux) expected.attach = tooLarge;
    expect(JSON.parse(r.stdout)).toEqual(expected);
  });

  it('a failed second create does not drop the first one from the tracker', async () => {
    const name = `${process.env.MULTIPROC_SHM_PREFIX}-twice${process.pid}`;
    // The child leaves the segment for its tracker on purpose: no leak report for it.
    const r = await runNode(fixture('shm-create-twice.mjs'), [name], { env: { MULTIPROC_LEAK_REPORT: '' } });
    expect(r.stdout.trim()).toBe('refused');
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      gone = !(await segmentExists(name));
      if (!gone) await sleep(100);
    }
    expect(gone).toBe(true);
  });

  it('survives its creator being SIGKILLed: the tracker unlinks every segment', async () => {
    const child = spawn(process.execPath, [fixture('create-and-die.mjs')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      // This test kills the creator on purpose: its leak is expected, not a test bug.
      env: { ...process.env, MULTIPROC_LEAK_REPORT: '' },
    });
    const line = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString())));
    const { names } = JSON.parse(line) as { names: string[] };
    expect(names).toHaveLength(3);
    for (const n of names) expect(await segmentExists(n)).toBe(true);
    child.kill('SIGKILL');
    let left = names;
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await sleep(100);
      const still: string[] = [];
      for (const n of names) if (await segmentExists(n)) still.push(n);
      left = still;
    }
    expect(left).toEqual([]);
  });
});

describe('ShareableList', () => {
  it('holds numbers, bigints, booleans, strings, bytes and null; a child (Process arg) and another process (by name) read and write the same list', async () => {
    const sl = mp.ShareableList.create([1, 2.5, 'héllo', Buffer.from([1, 2, 0, 3]), null, true, 2n ** 60n, -7]);
    try {
      expect(sl.length).toBe(8);
      expect(sl.toArray()).toEqual([1, 2.5, 'héllo', Buffer.from([1, 2, 0, 3]), null, true, 2n ** 60n, -7]);
      expect(sl.format).toBe('qd8s8sxxxxxx?xxxxxxxx?qq');
      expect(sl.at(-1)).toBe(-7);
      const p = new mp.Process({
        target: (l: mp.ShareableList) => {
          l.set(0, (l.get(0) as number) + 41);
          l.set(1, 'abc'); // a number's slot takes a string of up to 8 bytes
          l.set(4, 0.5);
          l.set(5, false);
        },
        args: [sl],
      });
      await p.start();
      await p.join();
      expect(p.exitCode).toBe(0);
      const script = 'const mp = require("multiproc"); const l = mp.ShareableList.attach(process.argv[1]); l.set(2, null); console.log(JSON.stringify(l.toArray().slice(0, 2))); l.close();';
      const r = await collect(spawn(process.execPath, ['-e', script, sl.shm.name], { stdio: ['ignore', 'pipe', 'pipe'] }));
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('[42,"abc"]');
      expect(sl.toArray()).toEqual([42, 'abc', null, Buffer.from([1, 2, 0, 3]), 0.5, false, 2n ** 60n, -7]);
      expect([sl.count(false), sl.count(2n ** 60n), sl.index(null), sl.index(-7n)]).toEqual([1, 1, 2, 7]);
      expect(String(sl)).toBe(`ShareableList([ 42, 'abc', null, <Buffer 01 02 00 03>, 0.5, false, 1152921504606846976n, -7 ], name="${sl.shm.name}")`);
    } finally {
      sl.close();
      sl.unlink();
    }
  });

  it('is Python\'s ShareableList, layout and all: Python attaches to ours and we attach to Python\'s', async () => {
    expect(await hasPython()).toBe(true);
    const ours = mp.ShareableList.create([1, 2.5, 'héllo', Buffer.from('by'), null, true, 2n ** 60n]);
    const pyName = `${process.env.MULTIPROC_SHM_PREFIX}-pysl${process.pid}`;
    try {
      const py = `
import sys
from multiprocessing import shared_memory, resource_tracker
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")  # we do not own it
print(repr(list(sl)))
sl[0] = 42; sl[1] = "abc"; sl[4] = 3.25; sl[5] = False; sl[2] = None
sl.shm.close()
made = shared_memory.ShareableList([7, "py", b"\\x00b", None, 1.5, True, 2**62], name=sys.argv[2])
resource_tracker.unregister(made.shm._name, "shared_memory")  # the JS side unlinks it
made.shm.close()
`;
      const r = await collect(spawn('python3', ['-c', py, ours.shm.name, pyName], { stdio: ['ignore', 'pipe', 'pipe'] }));
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe("[1, 2.5, 'héllo', b'by', None, True, 1152921504606846976]");
      expect(ours.toArray()).toEqual([42, 'abc', null, Buffer.from('by'), 3.25, false, 2n ** 60n]);
      const theirs = mp.ShareableList.attach(pyName);
      expect(theirs.toArray()).toEqual([7, 'py', Buffer.from([0, 0x62]), null, 1.5, true, 2n ** 62n]);
      expect(theirs.format).toBe('q8s8sxxxxxx?xdxxxxxxx?q');
      theirs.close();
      theirs.unlink();
    } finally {
      ours.close();
      ours.unlink();
    }
  });

  it('bad input is a clear error and changes nothing; a segment that holds no list is refused on attach', () => {
    expect(() => mp.ShareableList.create([1, {}] as never)).toThrow("ShareableList items are numbers, bigints, booleans, strings, Buffers/Uint8Arrays or null (as Python's: int, float, bool, str, bytes, None); item 1 is an object");
    expect(() => mp.ShareableList.create([2n ** 63n])).toThrow(RangeError);
    expect(() => mp.ShareableList.create(5 as never)).toThrow(/takes an iterable of items/);
    expect(() => new (mp.ShareableList as unknown as new () => unknown)()).toThrow('ShareableList has no public constructor');
    const sl = mp.ShareableList.create(['abc', 1]);
    const junk = mp.SharedMemory.create(64);
    try {
      expect(() => sl.set(0, 'this is more than 8 bytes')).toThrow('ShareableList item 0: 25 bytes do not fit its 8 (a slot keeps the room it was made with)');
      expect(() => sl.set(2, 1)).toThrow(/index 2 is out of range \(length 2/);
      // at() names the index it was given (before: at(-3) of 2 items said "ShareableList.get(): index -1").
      expect([sl.at(-2), sl.at(-1)]).toEqual(['abc', 1]);
      expect(() => sl.at(-3)).toThrow(/^ShareableList\.at\(\): index -3 is out of range \(length 2/);
      expect(() => sl.get(0.5)).toThrow(TypeError);
      expect(() => sl.set(1, (() => 1) as never)).toThrow(TypeError);
      expect(() => sl.index('x')).toThrow(RangeError);
      expect(sl.toArray()).toEqual(['abc', 1]);
      // An item whose format would not fit the layout's 8 bytes is refused, as Python refuses it (before: stored unreadable; review helper-101).
      expect(() => mp.ShareableList.create([Buffer.alloc(9_999_992)])).toThrow(/item 0 is 9999992 bytes: its format "10000000s" is longer than the 8 bytes/);
      const big = mp.ShareableList.create([Buffer.alloc(9_999_991, 1)]);
      expect([big.format, (big.get(0) as Buffer).length]).toEqual(['9999992s', 9_999_991]);
      big.close();
      big.unlink();
      // count() and index() compare as Python's == does: True == 1 == 1.0, False == 0, NaN equals nothing (review helper-101).
      const mixed = mp.ShareableList.create([1, true, 1.5, 0, false, null, Number.NaN, 5n]);
      expect([mixed.count(1), mixed.index(true), mixed.count(0), mixed.index(false), mixed.count(Number.NaN), mixed.count(5), mixed.count(null)]).toEqual([2, 0, 2, 3, 0, 1, 1]);
      mixed.close();
      mixed.unlink();
      // Numbers read back as they were written: -0 and integers past 2^53 are floats (before: 0, and a bigint).
      const nums = mp.ShareableList.create([-0, 2 ** 53 + 2, 2 ** 70, 7]);
      expect(nums.toArray()).toEqual([-0, 2 ** 53 + 2, 2 ** 70, 7]);
      expect(Object.is(nums.get(0), -0)).toBe(true);
      expect(nums.format).toBe('dddq');
      nums.close();
      nums.unlink();
      expect(() => nums.get(0)).toThrow(mp.ClosedError);
      expect(() => nums.format).toThrow(mp.ClosedError);
      const tiny = mp.SharedMemory.create(4);
      expect(() => mp.ShareableList.attach(tiny.name)).toThrow(`Segment '${tiny.name}' does not hold a ShareableList (4 bytes)`);
      tiny.close();
      tiny.unlink();
      new Uint8Array(junk.buffer).fill(0xff);
      expect(() => mp.ShareableList.attach(junk.name)).toThrow(`Segment '${junk.name}' does not hold a ShareableList (bad item count -1)`);
    } finally {
      sl.close();
      sl.unlink();
      junk.close();
      junk.unlink();
    }
  });
});

describe('worker threads', () => {
  it('a worker thread that ends without closing what it attached gives it back: the segments go once this thread closes its own, and its pipe end closes (before: both stayed until the process tree ended)', async () => {
    const r = await runNode(fixture('worker-thread-release.mjs'), [], { timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ value: 6, event: true, msg: 'from the worker', goodbye: 'goodbye', end: 'EOFError', left: 0 });
  });
});

describe('the resource tracker', () => {
  it.runIf(isLinux).each(['crash', 'normal'])('SIGKILLed under its tree: the root starts another and tells it everything, so nothing leaks at the end (%s exit)', async (mode) => {
    const prefix = `trk${mode[0]}${process.pid % 10000}`;
    const r = await runNode(fixture('tracker-killed.mjs'), [mode], { env: { MULTIPROC_SHM_PREFIX: prefix }, timeoutMs: 30_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ restarted: true, child: 0 });
    const left = (): string[] => readdirSync('/dev/shm').filter((n) => n.startsWith(`${prefix}-`));
    for (let i = 0; i < 100 && left().length > 0; i++) await sleep(30);
    expect(left()).toEqual([]); // before: 42 (21 Values and their locks), for good
  });
});

describe('out of mappings', () => {
  it('ENOMEM from mmap says the process ran out of mappings (vm.max_map_count), not that /dev/shm is full', async () => {
    // The real case (32,553 Values on a 24 GB, nearly empty /dev/shm: vm.max_map_count 65530) takes
    // seconds and depends on the machine's limit; the errno the addon raises there is this one.
    const { shmError } = await import('../dist/cjs/errors.js');
    const mapping = shmError(Object.assign(new Error('mmap failed'), { code: 'ENOMEM', syscall: 'mmap' }), 'mp-x', 'create a RLock');
    expect(mapping).toBeInstanceOf(RangeError);
    expect(mapping.message).toMatch(/out of memory mappings or address space, not \/dev\/shm space.*vm\.max_map_count/);
    const space = shmError(Object.assign(new Error('posix_fallocate failed'), { code: 'ENOSPC', syscall: 'posix_fallocate' }), 'mp-x', 'create');
    expect(space.message).toMatch(/is \/dev\/shm full or too small/);
  });
});
