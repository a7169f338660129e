/**
 * SharedMemory: a named POSIX shared memory segment of raw bytes, with no
 * header of ours, so that any other program can share it (Python's
 * `multiprocessing.shared_memory.SharedMemory(name=...)` attaches to ours and
 * we attach to Python's).
 *
 * Ownership follows the creator: a segment made by create() is registered
 * with the resource tracker and unlinked by the tracker if nobody in the
 * creator's process tree called unlink() before the tree ended. attach()
 * never registers, so attaching can never unlink a segment under its owner.
 *
 * Exports: SharedMemory.
 */
import { ClosedError, noPublicConstructor, shmError } from './errors';
import { native } from './native';
import { registerKind, type Handle } from './reduction';
import { register, unregister } from './resource-tracker';
import { createSegment, generateName, osName } from './segment';
import { kHandleTag, kToHandle } from './symbols';
import { checkInteger, checkOptionNames, describeValue } from './validate';

function checkName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError(`Expected "name" to be a string, got ${describeValue(name)}`);
  const bare = name.startsWith('/') ? name.slice(1) : name;
  if (bare.length === 0) throw new TypeError('Expected "name" to be a non-empty string');
  if (bare.includes('/')) throw new TypeError(`Shared memory names cannot contain '/' after the first character, got ${JSON.stringify(name)}`);
  // '/.' and '/..' are /dev/shm itself and its parent: create() said the name "already exists, attach to
  // it", and attach() that the segment "cannot be mapped (is it empty?)".
  if (bare === '.' || bare === '..') throw new TypeError(`Shared memory names cannot be '.' or '..' (they name the directory of the segments, not a segment), got ${JSON.stringify(name)}`);
  if (bare.includes('\0') || bare.includes('\n') || bare.includes(':')) {
    throw new TypeError(`Shared memory names cannot contain NUL, newline or ':', got ${JSON.stringify(name)}`);
  }
  // A lone surrogate has no UTF-8 form: it reached the OS as U+FFFD, so '\ud800' and '\udc00' named
  // the same segment (Python's str.encode refuses such a name too).
  if (!bare.isWellFormed()) throw new TypeError(`Shared memory names must be well-formed Unicode (no lone surrogates), got ${JSON.stringify(name)}`);
  // Linux's limit is NAME_MAX (255) for the name in /dev/shm, without the leading '/' (Python makes
  // such names: 254 refused its segments of 255 characters at attach).
  if (bare.length > 255) throw new RangeError(`Shared memory names are at most 255 characters without the leading '/', got ${bare.length}`);
  // NAME_MAX counts bytes, and the name reaches the OS as UTF-8: 200 'é' passed the check above, and
  // shm_open's EINVAL then said the segment "cannot be mapped (is it empty?)".
  const bytes = Buffer.byteLength(bare, 'utf8');
  if (bytes > 255) throw new RangeError(`Shared memory names are at most 255 bytes of UTF-8 without the leading '/', got ${bytes} bytes (${bare.length} characters)`);
  return name;
}

export interface SharedMemoryOptions {
  /** The segment's name; generated (unguessable, <= 30 chars) when omitted. */
  name?: string | undefined;
}

const kNew: unique symbol = Symbol('multiproc.SharedMemory.new');

export class SharedMemory {
  /** The name as given by the user (or generated); the OS name has one leading '/'. */
  readonly name: string;
  /** Size in bytes: as asked at create(); the segment's real size at attach(). */
  readonly size: number;
  #buffer: ArrayBuffer | null;
  #created: boolean;
  #unlinked = false;

  private constructor(token: typeof kNew, name: string, buffer: ArrayBuffer, size: number, created: boolean) {
    if (token !== kNew) {
      // Python's SharedMemory(name=None, create=False, size=0) habit.
      throw noPublicConstructor('SharedMemory', 'use SharedMemory.create(size, { name? }) to make a segment (Python\'s SharedMemory(create=True, size=n)) or SharedMemory.attach(name) to map one');
    }
    this.name = name;
    this.#buffer = buffer;
    this.size = size;
    this.#created = created;
  }

  /** Creates a new segment of `size` bytes (zero-filled, mode 0600); fails if the name exists. */
  static create(size: number, options: SharedMemoryOptions = {}): SharedMemory {
    checkInteger('size', size, 1);
    if (typeof options !== 'object' || options === null) throw new TypeError('Expected options to be an object like { name }');
    checkOptionNames(options, ['name'], 'SharedMemory.create()');
    const name = options.name === undefined ? generateName() : checkName(options.name);
    // Registered first: a kill between create and register must not leak it.
    // The tracker's unlink of a name that was never created is harmless.
    register(osName(name), 'shared_memory');
    let buffer: ArrayBuffer;
    try {
      buffer = createSegment(osName(name), size);
    } catch (e) {
      unregister(osName(name), 'shared_memory');
      throw shmError(e, name, 'create');
    }
    return new SharedMemory(kNew, name, buffer, size, true);
  }

  /** Maps an existing segment (made by multiproc, Python or anything else). */
  static attach(name: string): SharedMemory {
    checkName(name);
    let buffer: ArrayBuffer;
    try {
      buffer = native.shmAttach(osName(name));
    } catch (e) {
      throw shmError(e, name, 'attach');
    }
    return new SharedMemory(kNew, name, buffer, buffer.byteLength, false);
  }

  /** The mapped bytes. Views made from it become empty after close(). */
  get buffer(): ArrayBuffer {
    if (this.#buffer === null) throw new ClosedError(`SharedMemory '${this.name}' is closed; attach it again to use it`);
    return this.#buffer;
  }

  get closed(): boolean {
    return this.#buffer === null;
  }

  /**
   * Unmaps this process's view now (views over it become empty), so that
   * the memory of an unlinked segment is given back at once rather than at
   * the next GC. The segment itself lives on until unlink().
   */
  close(): void {
    if (this.#buffer === null) return;
    // unmap, not detach: the library never futex-waits on a raw segment.
    native.unmap(this.#buffer);
    this.#buffer = null;
  }

  /** Removes the name, so nobody can attach any more; mappings stay valid until closed. */
  unlink(): void {
    if (this.#unlinked) return;
    let existed: boolean;
    try {
      existed = native.shmUnlink(osName(this.name));
    } catch (e) {
      throw shmError(e, this.name, 'unlink');
    }
    this.#unlinked = true;
    if (this.#created) unregister(osName(this.name), 'shared_memory');
    if (!existed) throw Object.assign(new Error(`No shared memory segment named '${this.name}' exists (already unlinked by another process or object?)`), { code: 'ENOENT' });
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    // (Closed is fine: close() only unmaps here, and the segment lives on until unlinked, as in Python.)
    if (this.#unlinked) throw new ClosedError(`SharedMemory '${this.name}' was unlinked by this object: no one can attach it any more`);
    return { [kHandleTag]: 'SharedMemory', name: this.name };
  }

  toString(): string {
    return `SharedMemory(name=${JSON.stringify(this.name)}, size=${this.size})`;
  }
}

registerKind('SharedMemory', (h) => SharedMemory.attach(h.name), { counted: false });
