/**
 * Math.random() in a child made by fork() (forkserver, 'fork', and so every
 * pool worker by default): V8 keeps its xorshift128+ state in the context,
 * so every child forked from one zygote drew the very same numbers (three
 * Processes all returned 0.6814619...; helper-61), and pool workers running
 * a Monte Carlo map got correlated results. V8 has no API to reseed it, so a
 * forked child replaces Math.random with the same generator (xorshift128+,
 * V8's bit layout for the double) seeded from the OS (crypto), as Python
 * reseeds `random` after fork. It draws exactly what V8's would from that
 * state (checked against a BigInt version) and cost 16 ns a call here
 * against V8's 18 ns.
 *
 * crypto.randomUUID() has the same trouble: it draws from a cache of 128
 * UUIDs' worth of random bytes filled in the parent, so three 'fork'
 * children of a parent that had used it returned the same UUID (helper-62).
 * freshUuidCache() goes once round that cache, which makes Node refill it
 * from the OS in this process (~10 µs).
 *
 * crypto.randomInt() keeps a cache too (6 KiB, 6 bytes a call): refreshed
 * the same way in a 'fork' child (helper-63), whose parent is the user's
 * program (a forkserver child's is the zygote, which draws none).
 *
 * Exports: reseedMathRandom, freshUuidCache, freshRandomIntCache.
 */
import { randomFillSync, randomInt, randomUUID } from 'node:crypto';

/** Node's randomUUID() batch (lib/internal/crypto/random.js kBatchSize): the cache refills when its index wraps to 0. */
const kUuidBatch = 128;

export function freshUuidCache(): void {
  for (let i = 0; i < kUuidBatch; i++) randomUUID();
}

/** Node's randomInt() cache: 6 * 1024 bytes, 6 a call; it refills once it is used up. */
const kRandomIntCalls = 1024;

export function freshRandomIntCache(): void {
  for (let i = 0; i < kRandomIntCalls; i++) randomInt(2);
}

const k2p32 = 4294967296;
const k2p52 = 4503599627370496;

export function reseedMathRandom(): void {
  const seed = new Int32Array(4);
  do randomFillSync(seed);
  while (seed[0] === 0 && seed[1] === 0 && seed[2] === 0 && seed[3] === 0);
  // state0 = (h0, l0), state1 = (h1, l1): 64-bit words as 32-bit halves.
  let h0 = seed[0]!;
  let l0 = seed[1]!;
  let h1 = seed[2]!;
  let l1 = seed[3]!;
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
