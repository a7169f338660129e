/**
 * Math.random() in a child made by fork() (forkserver, 'fork', and so every
 * pool worker by default): V8 keeps its xorshift128+ state in the context,
 * so every child forked from one zygote drew the very same numbers (three
 * Processes all returned 0.6814619...; helper-61), and pool workers running
 * a Monte Carlo map got correlated results. V8 has no API to reseed it, so a
 * forked child replaces Math.random with the same generator (xorshift128+,
 * V8's bit layout for the double) seeded anew, as Python reseeds `random`
 * after fork. It draws exactly what V8's would from that state (checked
 * against a BigInt version) and cost 16 ns a call here against V8's 18 ns.
 * The seed mixes this process's pid, the time in ns and a draw of the
 * parent's generator (distinct for every child, as V8's own seed is not
 * secret either); seeding from crypto cost each forked child ~1.2 ms here
 * (OpenSSL's first use after the fork), measured on a pool's start.
 *
 * crypto.randomUUID() has the same trouble: it draws from a cache of 128
 * UUIDs' worth of random bytes filled in the parent, so three 'fork'
 * children of a parent that had used it returned the same UUID (helper-62).
 * crypto.randomInt() keeps a cache too (6 KiB, 6 bytes a call; helper-63).
 * In a 'fork' child, whose parent is the user's program, freshCryptoCaches()
 * goes once round both, which makes Node refill them from the OS here
 * (~1 ms, on a start that costs tens). A forkserver child's parent is the
 * zygote, which draws neither (unless a module preloaded into it does).
 *
 * Exports: reseedMathRandom, freshCryptoCaches.
 */
import { randomInt, randomUUID } from 'node:crypto';

/** Node's randomUUID() batch (lib/internal/crypto/random.js kBatchSize): the cache refills when its index wraps to 0. */
const kUuidBatch = 128;

/** Node's randomInt() cache: 6 * 1024 bytes, 6 a call; it refills once it is used up. */
const kRandomIntCalls = 1024;

export function freshCryptoCaches(): void {
  for (let i = 0; i < kUuidBatch; i++) randomUUID();
  for (let i = 0; i < kRandomIntCalls; i++) randomInt(2);
}

/** murmur3's 32-bit finalizer: every input bit moves every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const k2p32 = 4294967296;
const k2p52 = 4503599627370496;

export function reseedMathRandom(): void {
  const ns = process.hrtime.bigint();
  const pid = process.pid;
  const tlo = Number(ns & 0xffffffffn) | 0;
  const thi = Number((ns >> 32n) & 0xffffffffn) | 0;
  const parent = (Math.random() * k2p32) | 0;
  // state0 = (h0, l0), state1 = (h1, l1): 64-bit words as 32-bit halves.
  let h0 = fmix32(pid ^ fmix32(tlo));
  let l0 = fmix32((tlo + 0x9e3779b9) ^ fmix32(parent));
  let h1 = fmix32(thi ^ fmix32(pid + 0x7f4a7c15));
  let l1 = fmix32(parent ^ fmix32(tlo ^ 0x6a09e667)) | 1; // never the all-zero state
  const random = (): number => {
    // base::RandomNumberGenerator::XorShift128: s1 = state0, s0 = state1.
    let sh = h0;
    let sl = l0;
    const th = h1;
    const tl = l1;
    h0 = th;
    l0 = tl;
    // s1 ^= s1 << 23
    sh ^= (sh << 23) | (sl >>> 9);
    sl ^= sl << 23;
    // s1 ^= s1 >> 17 (logical)
    sl ^= (sl >>> 17) | (sh << 15);
    sh ^= sh >>> 17;
    // s1 ^= s0; s1 ^= s0 >> 26
    sh ^= th ^ (th >>> 26);
    sl ^= tl ^ ((tl >>> 26) | (th << 6));
    h1 = sh;
    l1 = sl;
    // ToDouble(state0): its top 52 bits over 2^52, in [0, 1).
    return ((h0 >>> 12) * k2p32 + ((((h0 & 0xfff) << 20) | (l0 >>> 12)) >>> 0)) / k2p52;
  };
  Object.defineProperty(Math, 'random', { value: random, writable: true, enumerable: false, configurable: true });
}
