/**
 * Barrier: `parties` waiters meet, then all go on (Python's threading.Barrier
 * algorithm, on shared words instead of a threading.Condition).
 *
 * Payload (Int32 words from the segment's payload offset; 64 bytes):
 *
 *   word  byte  field    meaning
 *   0-4   0     MUTEX    an embedded Mutex (see lock.ts) guarding STATE and COUNT
 *   5     20    SEQ      bumped by every notifyAll; waiters sleep on it
 *   6     24    STATE    FILLING 0 | DRAINING 1 | ACTING 2 | RESETTING -1 | BROKEN -2
 *   7     28    COUNT    parties inside wait() now; with slots, in the low
 *                        11 bits, above them an epoch bumped by #clearStuck
 *   8     32    PARTIES  constant
 *   9     36    SLEEPERS waiters sleeping or about to sleep on SEQ
 *   10    40    ACTOR    pid of the party running the action (while ACTING; -pid once it closed)
 *   11    44    LOOKED   when a process last looked for dead parties (Date.now(), low 32 bits)
 *   12    48    TICKET   the next arrival's ticket (with slots)
 *   13-15 52    reserved
 *   16... 64    SLOTS    one word per party (up to kMaxTrackedParties): the pid of
 *                        each party inside wait(), 0 when free, -pid for a party
 *                        whose object was closed while counted (see close()).
 *                        "pid" here and in ACTOR: common.ts myOwnerId, on Linux a
 *                        worker thread's kernel thread id, so a party thread
 *                        terminated inside wait() is a dead party, as a killed
 *                        process is
 *   16+P  64+4P RANKS    one word per slot: the party's arrival ticket, then,
 *                        once its round completes, its index (see #rank)
 *
 * A party arriving while the previous round drains (or a reset completes)
 * waits for COUNT to reach 0 first; its index is its arrival order in the
 * round, 0..parties-1 (among the parties alive when it completes: a party
 * killed inside wait() leaves no gap and no duplicate, see #rank). The last
 * to arrive (index parties-1) runs the action and moves the barrier to
 * DRAINING, waking everyone. The action runs
 * without the mutex, in state ACTING (the round stays closed: arrivals wait,
 * the parties inside keep waiting and do not time out, as in Python, where
 * the action holds the lock), so that abort() and reset() elsewhere, which
 * take the mutex, never block their event loop for as long as an action
 * runs. abort() or reset() during the action breaks the round: its parties,
 * the one running the action included, get BrokenBarrierError. A party
 * killed while running the action breaks the barrier (seen within a slice
 * by the watch, below, by pid and segment mapping). A wait whose timeout
 * passes, abort(), or an action that throws, moves it to BROKEN: every
 * current and later wait rejects with BrokenBarrierError until reset().
 * reset() while parties wait breaks their wait (BrokenBarrierError) and
 * leaves the barrier fresh once they have left.
 *
 * Waiting parties sleep on SEQ and read STATE without the mutex: every
 * change of STATE bumps SEQ, and a party inside a round cannot miss the
 * change that ends it, since the round stays DRAINING, RESETTING or BROKEN
 * until that party has left (COUNT holds it open). They leave without the
 * mutex too (free the slot, decrement COUNT); only the last one out takes
 * it, to make the round fresh. So a waiting party costs nothing while
 * nothing happens, and a release of a thousand parties is not a thousand
 * hand-overs of one mutex. The mutex is taken by arrivals, by a wait whose
 * deadline passed (to break the barrier if the round is still filling), and
 * by abort() and reset().
 *
 * The action is a plain function of the object, and functions do not cross
 * processes: the party that completes a round runs the action of *its own*
 * Barrier object, if that object has one. Give the action to the Barrier in
 * every process (`new Barrier(n, action)` there, or set `barrier.action`
 * after receiving it) to have it run once per round wherever the round
 * completes; give it only in one process and it runs only in rounds that
 * process completes.
 *
 * A party killed inside wait() is taken off COUNT by the next party that
 * looks (on entering wait(), the watch while parties wait, and reset()),
 * from its slot: the round then needs one more party, and a draining round
 * or a reset does not wait for it for good. The watch is one timer per
 * Barrier object, running while that object has waits asleep: every slice
 * (200 ms) it checks each distinct pid in the slots once (kill 0), and the
 * action's party (pid and mapping), without the mutex, which it takes only
 * when someone died. Processes take turns through LOOKED (a CAS on a
 * timestamp): about one look per slice whatever the number of processes.
 * Waiters never look themselves: one look per waiter per slice, under the
 * mutex, is parties x slots work per slice, and arrivals and the release
 * queued behind it for seconds. Barriers of more than kMaxTrackedParties
 * parties have no slots: there a killed party stays counted until a timeout
 * breaks the barrier, as threads do in Python. The embedded mutex recovers
 * from a holder killed inside it, like a Lock; the watch also looks at its
 * holder, and whoever takes it over from a dead one recounts a filling
 * round from the slots (a party killed between its count and its slot is
 * named by no slot: see #acquired). A party killed on its way out between
 * freeing its slot and its decrement is named by no slot either: two looks
 * a slice apart that find a leaving round counted by no slot, unchanged,
 * make it fresh (#clearStuck); COUNT's epoch keeps a leaver that was only
 * stopped there from decrementing the next round.
 */
import { BrokenBarrierError } from '../errors';
import { Kind } from '../layout';
import { registerKind, type Handle } from '../reduction';
import { attachShared, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { kTrustMs, recentlyAlive } from '../liveness';
import { native } from '../native';
import { checkInteger, checkOptionNames, deadlineFrom, describeValue, remaining } from '../validate';
import { forkGeneration, kInheritedCall, waitAsync, wake } from '../wait';
import { adopt, closedError, closeWaking, isAdopting, myOwnerId, segmentFor } from './common';
import { kMutexWords, Mutex } from './lock';

const SEQ = kMutexWords;
const STATE = SEQ + 1;
const COUNT = SEQ + 2;
const PARTIES = SEQ + 3;
const SLEEPERS = SEQ + 4;
const ACTOR = SEQ + 5;
const LOOKED = SEQ + 6;
const TICKET = 12;
const SLOTS = 16;
/** Barriers up to this many parties track each party's pid (4 bytes a party). */
const kMaxTrackedParties = 1024;
/** COUNT's bits that count parties in a barrier with slots (the rest: #clearStuck's epoch). */
const kTrackedCountMask = 0x7ff;
const FILLING = 0;
const DRAINING = 1;
const ACTING = 2;
const RESETTING = -1;
const BROKEN = -2;
/** What #sleepUntil returns when the deadline passed (never a state). */
const TIMED_OUT = -100;
const leaving = (s: number): boolean => s === DRAINING || s === RESETTING || s === ACTING;
const filling = (s: number): boolean => s === FILLING || s === ACTING;

export type BarrierAction = () => unknown;

export class Barrier {
  readonly #segment: Segment;
  readonly #w: Int32Array;
  readonly #buf: ArrayBuffer;
  readonly #off: number;
  readonly #mutex: Mutex;
  readonly #timeout: number | undefined;
  readonly #slots: number;
  /** COUNT's bits that count parties (all of them in a barrier without slots). */
  readonly #countMask: number;
  /** This object's waits asleep in #sleepUntil, and the watch that looks for dead parties meanwhile. */
  #asleep = 0;
  #watchTimer: NodeJS.Timeout | undefined;
  #watchGen = forkGeneration();
  #reaping = false;
  /** Slots held by this object's counted waits (close() marks them, see there). */
  readonly #mySlots = new Set<number>();
  /** A wait of this object runs the action now. */
  #acting = false;
  /**
   * What this process's last look saw of a leaving round that no slot
   * accounts for (COUNT > 0, every slot free): SEQ and COUNT, or null.
   */
  #stuck: { seq: number; count: number } | null = null;
  /** The look before this one saw the same stuck round (see #someoneDied). */
  #stuckTwice = false;
  /** Run by the party that completes a round, if it is this process's object (see the module comment). */
  action: BarrierAction | undefined;

  /**
   * `parties`: how many waits make a round (integer >= 1). `action`: run by
   * the party completing a round, before any party is released. `timeout`:
   * default for wait() in milliseconds (it travels with the barrier's
   * handle, as in Python; the action does not: see the module comment).
   */
  constructor(parties: number, action?: BarrierAction, timeout?: number) {
    if (!isAdopting()) {
      checkInteger('parties', parties, 1, 0x7fffffff);
      if (action !== undefined && action !== null && typeof action !== 'function') {
        throw new TypeError(`Expected the Barrier's action to be a function, got ${describeValue(action)}`);
      }
      deadlineFrom('timeout', timeout);
    }
    const slots = parties <= kMaxTrackedParties ? parties : 0;
    const { segment, fresh } = segmentFor(Kind.Barrier, 64 + 8 * slots, [parties, 0]);
    this.#segment = segment;
    this.#buf = segment.buffer;
    this.#off = segment.payloadOffset;
    this.#slots = slots;
    this.#countMask = slots > 0 ? kTrackedCountMask : 0x7fffffff;
    this.#w = new Int32Array(segment.buffer, segment.payloadOffset, SLOTS + 2 * slots);
    if (fresh) this.#w[PARTIES] = parties;
    this.#mutex = new Mutex(segment.buffer, segment.payloadOffset, false, 'Barrier', segment.name);
    this.action = action ?? undefined;
    this.#timeout = timeout ?? undefined;
    segment.bindTo(this);
  }

  /** Parties counted in the round now (COUNT without its epoch). */
  #count(w: Int32Array): number {
    return Atomics.load(w, COUNT) & this.#countMask;
  }

  #words(): Int32Array {
    const w = this.#w;
    if (w.length === 0) throw closedError('Barrier', this.#segment.name);
    return w;
  }

  get parties(): number {
    return this.#words()[PARTIES];
  }

  /** Parties waiting in the current round (a snapshot). */
  get nWaiting(): number {
    const w = this.#words();
    const s = Atomics.load(w, STATE);
    return s === FILLING || s === ACTING ? this.#count(w) : 0;
  }

  get broken(): boolean {
    return Atomics.load(this.#words(), STATE) === BROKEN;
  }

  #notifyAll(w: Int32Array): void {
    Atomics.add(w, SEQ, 1);
    if (Atomics.load(w, SLEEPERS) > 0) wake(this.#buf, this.#off + SEQ * 4, -1);
  }

  /**
   * Sleeps on SEQ, without the mutex, until `waiting(STATE)` is false:
   * returns that state, or TIMED_OUT once the deadline has passed outside an
   * action (an action holds its round's parties, whatever their deadlines).
   * SEQ is read before STATE and every change of STATE bumps it, so no
   * change is missed.
   */
  async #sleepUntil(w: Int32Array, waiting: (state: number) => boolean, deadline: number): Promise<number> {
    Atomics.add(w, SLEEPERS, 1);
    this.#watchStart();
    try {
      for (;;) {
        const seq = Atomics.load(w, SEQ);
        const s = Atomics.load(w, STATE);
        if (!waiting(s)) return s;
        const ms = s === ACTING ? Infinity : remaining(deadline);
        if (ms === 0) return TIMED_OUT;
        await waitAsync(this.#buf, this.#off + SEQ * 4, seq, ms);
        if (w.length === 0) throw closedError('Barrier', this.#segment.name);
      }
    } finally {
      this.#watchStop();
      if (w.length !== 0) Atomics.sub(w, SLEEPERS, 1);
    }
  }

  #watchStart(): void {
    const gen = forkGeneration();
    if (this.#watchGen !== gen) {
      // A fork child: the parent's waits and timer are not ours.
      this.#watchGen = gen;
      this.#asleep = 0;
      this.#watchTimer = undefined;
    }
    if (this.#asleep++ === 0) this.#watchTimer = setTimeout(() => this.#watch(), kTrustMs).unref();
  }

  #watchStop(): void {
    if (this.#watchGen !== forkGeneration() || --this.#asleep !== 0) return;
    if (this.#watchTimer !== undefined) clearTimeout(this.#watchTimer);
    this.#watchTimer = undefined;
  }

  /** One tick of the watch (see the module comment). */
  #watch(): void {
    const w = this.#w;
    // (A fork child's copy of the parent's timer, if it runs there, stops: those waits are not the child's.)
    if (w.length === 0 || this.#asleep === 0 || this.#watchGen !== forkGeneration()) {
      this.#watchTimer = undefined;
      return;
    }
    this.#watchTimer = setTimeout(() => this.#watch(), kTrustMs).unref();
    if (this.#reaping || !this.#takeTurn(w) || !this.#someoneDied(w)) return;
    this.#reaping = true;
    this.#mutex.acquire(Infinity, undefined).then(() => {
      try {
        if (w.length === 0) return;
        this.#acquired(w);
        this.#reapDead(w);
        this.#clearStuck(w);
        this.#checkActor(w);
      } finally {
        if (!this.#mutex.detached) this.#mutex.release();
      }
    }).catch(() => {
      // Closed meanwhile: nothing left to watch here.
    }).finally(() => {
      this.#reaping = false;
    });
  }

  /** Whether this process looks now: nobody looked in the last half slice (LOOKED is then ours). */
  #takeTurn(w: Int32Array): boolean {
    const now = Date.now() | 0;
    const last = Atomics.load(w, LOOKED);
    const age = (now - last) | 0;
    // A clock set back (age < 0) must not stop the looks for good.
    if (age >= 0 && age < kTrustMs / 2) return false;
    return Atomics.compareExchange(w, LOOKED, last, now) === last;
  }

  /**
   * After every take of the mutex: if it was taken over from a process that
   * died holding it, that process may have died between counting itself in
   * (COUNT + 1) and taking its slot, where no slot names it. While the round
   * fills, COUNT only moves under the mutex and every counted party holds a
   * slot, so the count of occupied slots (dead and closed parties included:
   * #reapDead takes those off next) is the true COUNT. Elsewhere leavers
   * decrement without the mutex, and the slots say nothing certain.
   */
  #acquired(w: Int32Array): void {
    if (!this.#mutex.ownerDied || w.length === 0) return;
    // The dead holder may have stored STATE (#freshen, #reapDead, reset(),
    // abort()) and died before its notifyAll: sleepers would never hear of it.
    this.#notifyAll(w);
    if (this.#slots === 0 || Atomics.load(w, STATE) !== FILLING) return;
    let n = 0;
    for (let i = 0; i < this.#slots; i++) if (w[SLOTS + i] !== 0) n++;
    const c = Atomics.load(w, COUNT);
    if ((c & this.#countMask) !== n) Atomics.store(w, COUNT, (c & ~this.#countMask) | n);
  }

  /** Without the mutex: whether a party in a slot, the one running the action, or the mutex's holder has died. */
  #someoneDied(w: Int32Array): boolean {
    const me = myOwnerId();
    // (A holder that died inside wait() between its count and its slot is named nowhere else: see #acquired.)
    const holder = this.#mutex.ownerPid();
    if (holder !== 0 && holder !== me && !native.isAlive(holder)) return true;
    const seen = new Set<number>();
    let occupied = 0;
    for (let i = 0; i < this.#slots; i++) {
      const pid = Atomics.load(w, SLOTS + i);
      if (pid !== 0) occupied++;
      if (pid === 0 || pid === me || seen.has(pid)) continue;
      if (pid < 0 || !native.isAlive(pid)) return true; // < 0: closed (see close())
      seen.add(pid);
    }
    const s = Atomics.load(w, STATE);
    if (s === DRAINING || s === RESETTING) {
      const count = Atomics.load(w, COUNT);
      // Drained, and nobody made it fresh: its last party died on the way out (see #reapDead).
      if ((count & this.#countMask) === 0) return true;
      if (this.#slots > 0 && occupied === 0) {
        // Counted, and named by no slot: leavers between freeing their slot
        // and their decrement, a few instructions, or killed there. Two looks
        // a slice apart that see the same round (SEQ and COUNT unchanged)
        // take it for the latter (see #clearStuck).
        const seq = Atomics.load(w, SEQ);
        const prev = this.#stuck;
        this.#stuck = { seq, count };
        this.#stuckTwice = prev !== null && prev.seq === seq && prev.count === count;
        return this.#stuckTwice;
      }
    }
    this.#stuck = null;
    return s === ACTING && this.#actorGone(Atomics.load(w, ACTOR));
  }

  /**
   * Holding the mutex, after two looks a slice apart saw a leaving round
   * whose count no slot accounts for, unchanged (#someoneDied): those
   * parties were killed between freeing their slot and their decrement (a
   * two-word step that leavers take without the mutex, so no one can tell
   * "not yet" from "never" at one instant). The round is made fresh. A
   * leaver that was only stopped there for the whole slice finds, when it
   * resumes, a new epoch in COUNT and takes nothing off (see wait()).
   */
  #clearStuck(w: Int32Array): void {
    const stuck = this.#stuck;
    if (!this.#stuckTwice || stuck === null) return;
    this.#stuck = null;
    this.#stuckTwice = false;
    const s = Atomics.load(w, STATE);
    if ((s !== DRAINING && s !== RESETTING) || Atomics.load(w, SEQ) !== stuck.seq || Atomics.load(w, COUNT) !== stuck.count) return;
    for (let i = 0; i < this.#slots; i++) if (Atomics.load(w, SLOTS + i) !== 0) return;
    // A new epoch, so that a leaver only stopped there takes nothing off the next round.
    Atomics.store(w, COUNT, ((stuck.count & ~this.#countMask) + this.#countMask + 1) | 0);
    this.#freshen(w);
  }

  /** The party running the action died or closed the barrier (close() negates ACTOR; Linux also sees the mapping go). */
  #actorGone(actor: number): boolean {
    return actor <= 0 || !recentlyAlive(actor, this.#segment.name);
  }

  #break(w: Int32Array): void {
    Atomics.store(w, STATE, BROKEN);
    this.#notifyAll(w);
  }

  /**
   * While ACTING: breaks the barrier if the party running the action has
   * died (or closed the barrier: it no longer maps it), and takes that
   * party off COUNT, as its own wait() would have on the way out (else
   * a reset() would wait for it to leave, for good). Call holding the mutex.
   */
  #checkActor(w: Int32Array): void {
    if (Atomics.load(w, STATE) === ACTING && this.#actorGone(w[ACTOR])) {
      // Counted off once: here, or already by #reapDead (which found its slot).
      if (this.#slots === 0 || this.#freeSlotOf(w, w[ACTOR])) Atomics.sub(w, COUNT, 1);
      this.#break(w);
    }
  }

  /** Records this party's pid in a free slot (holding the mutex); -1 when untracked. */
  #claimSlot(w: Int32Array): number {
    for (let i = 0; i < this.#slots; i++) {
      if (w[SLOTS + i] === 0) {
        Atomics.store(w, SLOTS + i, myOwnerId());
        this.#mySlots.add(i);
        return i;
      }
    }
    return -1;
  }

  /**
   * The completing party (holding the mutex, before the release): turns
   * each counted party's ticket into its index, its rank among them. COUNT
   * gave indexes at arrival, and a party killed inside wait() taken off it
   * made the next arrival's index one a live party held: with A killed,
   * Barrier(3) gave [1, 1, 2] and nobody got 0 (`if (await b.wait() === 0)`
   * then ran nowhere; helper-72).
   */
  #rank(w: Int32Array): void {
    const ranks = SLOTS + this.#slots;
    const next = Atomics.load(w, TICKET);
    const counted: number[] = [];
    for (let i = 0; i < this.#slots; i++) if (Atomics.load(w, SLOTS + i) !== 0) counted.push(i);
    // Oldest first; (next - ticket) as unsigned survives the ticket's wrap.
    const age = (i: number): number => (next - w[ranks + i]) >>> 0;
    counted.sort((a, b) => age(b) - age(a));
    counted.forEach((slot, rank) => Atomics.store(w, ranks + slot, rank));
  }

  /** Frees a slot of pid; false if it has none (untracked, or #reapDead took it off already). */
  #freeSlotOf(w: Int32Array, pid: number): boolean {
    for (let i = 0; i < this.#slots; i++) {
      if (w[SLOTS + i] === pid) {
        Atomics.store(w, SLOTS + i, 0);
        return true;
      }
    }
    return false;
  }

  /**
   * Takes parties whose process died inside wait() off COUNT (holding the
   * mutex), as their own wait() would have on the way out: the last one out
   * of a draining or resetting round makes it fresh.
   */
  #reapDead(w: Int32Array): void {
    const me = myOwnerId();
    // Each distinct pid is checked once (kill 0 only: a look at each party's
    // mappings, under the mutex, on every entry, would cost a round
    // O(parties^2) reads).
    const alive = new Map<number, boolean>();
    let gone = 0;
    for (let i = 0; i < this.#slots; i++) {
      const pid = w[SLOTS + i];
      if (pid === 0 || pid === me) continue;
      let ok = alive.get(pid);
      if (ok === undefined) alive.set(pid, (ok = pid > 0 && native.isAlive(pid)));
      if (!ok) {
        Atomics.store(w, SLOTS + i, 0);
        gone++;
      }
    }
    if (gone === 0) {
      // A round left by all its parties whose last one died between its
      // decrement and its #freshen (leavers decrement without the mutex).
      this.#freshen(w);
      return;
    }
    if ((Atomics.sub(w, COUNT, gone) & this.#countMask) === gone) {
      const s = Atomics.load(w, STATE);
      if (s === DRAINING || s === RESETTING) Atomics.store(w, STATE, FILLING);
    }
    this.#notifyAll(w);
  }

  /**
   * Waits for the round to fill; resolves with this party's index
   * (0..parties-1). Rejects with BrokenBarrierError if the barrier is or
   * becomes broken, or if `timeoutMs` passes (which breaks it for everyone).
   */
  async wait(timeoutMs?: number | { timeout?: number }): Promise<number> {
    if (typeof timeoutMs === 'object' && timeoutMs !== null) {
      // { timeout }, as Event.wait and Condition.wait take (no signal: an
      // abort would have to break the round for every party, as a timeout does).
      checkOptionNames(timeoutMs, ['timeout'], 'Barrier.wait()');
      timeoutMs = timeoutMs.timeout;
    }
    const w = this.#words();
    let deadline = deadlineFrom('timeoutMs', timeoutMs ?? this.#timeout);
    // After each await: a fork child's copy of this call stops there (see kInheritedCall).
    const gen = forkGeneration();
    await this.#mutex.acquire(Infinity, undefined);
    if (forkGeneration() !== gen) await kInheritedCall;
    this.#acquired(w);
    this.#stillOpen(w);
    // The timeout counts from here, as in Python (its wait() takes the lock
    // without one): behind a holder killed in the mutex, the takeover alone
    // (a slice or two) spent a short timeout, and the round broke as it began.
    deadline = deadlineFrom('timeoutMs', timeoutMs ?? this.#timeout);
    let held = true;
    let counted = false;
    let epoch = 0;
    let slot = -1;
    try {
      this.#reapDead(w);
      // Wait while the previous round drains or a reset completes: with no
      // deadline, as in Python (breaking here would break a round that has
      // passed under its slower parties); the watch takes dead parties off.
      for (let s = Atomics.load(w, STATE); s === DRAINING || s === RESETTING || s === ACTING; s = Atomics.load(w, STATE)) {
        this.#mutex.release();
        held = false;
        await this.#sleepUntil(w, leaving, Infinity);
        if (forkGeneration() !== gen) await kInheritedCall;
        this.#stillOpen(w);
        await this.#mutex.acquire(Infinity, undefined);
        if (forkGeneration() !== gen) await kInheritedCall;
        this.#acquired(w);
        this.#stillOpen(w);
        held = true;
        // The timeout counts from entering the round, as in Python (whose
        // arrivals wait outside while a round drains or its action runs):
        // spent here, it broke the next round the moment it began.
        deadline = deadlineFrom('timeoutMs', timeoutMs ?? this.#timeout);
      }
      if (Atomics.load(w, STATE) < 0) throw new BrokenBarrierError('The barrier is broken (a wait timed out, abort() was called or an action threw): reset() makes it usable again');
      const word = Atomics.add(w, COUNT, 1);
      const index = word & this.#countMask;
      epoch = word & ~this.#countMask;
      counted = true;
      slot = this.#claimSlot(w);
      if (slot >= 0) Atomics.store(w, SLOTS + this.#slots + slot, Atomics.add(w, TICKET, 1));
      if (index + 1 === w[PARTIES]) {
        if (slot >= 0) this.#rank(w);
        await this.#complete(w);
        if (forkGeneration() !== gen) await kInheritedCall;
        return index;
      }
      this.#mutex.release();
      held = false;
      for (;;) {
        const s = await this.#sleepUntil(w, filling, deadline);
        if (forkGeneration() !== gen) await kInheritedCall;
        if (s !== TIMED_OUT) {
          if (s < 0) throw new BrokenBarrierError('The barrier was broken (aborted, reset, or another party timed out) while waiting');
          return slot >= 0 && w.length !== 0 ? Atomics.load(w, SLOTS + this.#slots + slot) : index;
        }
        this.#stillOpen(w);
        await this.#mutex.acquire(Infinity, undefined);
        if (forkGeneration() !== gen) await kInheritedCall;
        this.#acquired(w);
        this.#stillOpen(w);
        held = true;
        const now = Atomics.load(w, STATE);
        if (now === FILLING) {
          this.#break(w);
          const limit = timeoutMs ?? this.#timeout;
          throw new BrokenBarrierError(`Barrier.wait(): timed out after ${limit} ms with ${this.#count(w)} of ${w[PARTIES]} parties; the barrier is now broken`);
        }
        // Filled meanwhile: an action now holds the round (no deadline), or the round is over.
        this.#mutex.release();
        held = false;
      }
    } finally {
      // Closed meanwhile: close() marked this party's slot for the others to take off.
      if (counted && w.length !== 0) {
        // The slot's store and the decrement stay adjacent: a party stopped
        // between them looks killed there (see #clearStuck).
        if (slot >= 0) {
          this.#mySlots.delete(slot);
          Atomics.store(w, SLOTS + slot, 0);
        }
        // Parties leave without the mutex (one at a time behind it, a
        // thousand parties took long to go); the last one out of a
        // draining or resetting round takes it to make the round fresh.
        let before = 0;
        for (;;) {
          const c = Atomics.load(w, COUNT);
          // Another epoch: stopped between the two steps above for a whole
          // slice, this party was taken for a killed one and the round made
          // fresh without it (#clearStuck); the decrement is not ours to make.
          if ((c & ~this.#countMask) !== epoch) break;
          if (Atomics.compareExchange(w, COUNT, c, (c - 1) | 0) === c) {
            before = c & this.#countMask;
            break;
          }
        }
        if (before === 1) {
          if (!held) {
            await this.#mutex.acquire(Infinity, undefined);
            if (forkGeneration() !== gen) await kInheritedCall;
            this.#acquired(w);
            held = true;
          }
          // (Closed meanwhile: whoever looks next finds the round left and freshens it, see #reapDead.)
          if (w.length !== 0) this.#freshen(w);
        }
      }
      if (held && !this.#mutex.detached) this.#mutex.release();
    }
  }

  /**
   * After each await of wait(): the words may be gone (close() from another
   * task meanwhile, which gave back a hold taken here), and the code after
   * it must not run on them.
   */
  #stillOpen(w: Int32Array): void {
    if (w.length === 0) throw closedError('Barrier', this.#segment.name);
  }

  /** After the count reached 0 (holding the mutex): a draining or resetting round is over. */
  #freshen(w: Int32Array): void {
    // Someone may have come in since (a reset() that saw 0 and a new round).
    if (this.#count(w) !== 0) return;
    const s = Atomics.load(w, STATE);
    if (s === DRAINING || s === RESETTING) {
      Atomics.store(w, STATE, FILLING);
      this.#notifyAll(w);
    }
  }

  /** Runs the action (if any) without the mutex, then releases the round. Called and returns holding the mutex. */
  async #complete(w: Int32Array): Promise<void> {
    const action = this.action;
    if (action === undefined) {
      this.#release(w);
      return;
    }
    w[ACTOR] = myOwnerId();
    Atomics.store(w, STATE, ACTING);
    this.#mutex.release();
    let failed = false;
    let failure: unknown;
    // Until STATE leaves ACTING (the re-acquire below included: a close()
    // there, with ACTOR left ours, stalled the round for good where another
    // object of this process still mapped the barrier).
    this.#acting = true;
    const gen = forkGeneration();
    try {
      try {
        await action();
      } catch (e) {
        failed = true;
        failure = e;
      }
      // An action that forked (a Process started with 'fork'): the round is the parent's to release.
      if (forkGeneration() !== gen) await kInheritedCall;
      // Closed meanwhile (by the action itself, say): the others see this party gone (#checkActor).
      this.#stillOpen(w);
      await this.#mutex.acquire(Infinity, undefined);
      this.#acquired(w);
      this.#stillOpen(w);
      if (Atomics.load(w, STATE) !== ACTING) {
        if (failed) throw failure;
        throw new BrokenBarrierError('The barrier was broken (aborted or reset) while its action ran');
      }
      if (failed) {
        this.#break(w);
        throw failure;
      }
      this.#release(w);
    } finally {
      this.#acting = false;
    }
  }

  /** The round is complete: its parties go (holding the mutex). */
  #release(w: Int32Array): void {
    Atomics.store(w, STATE, DRAINING);
    this.#notifyAll(w);
  }

  /** Runs `fn` holding the barrier's mutex (blocking briefly if another process holds it: never across an action). */
  #locked(fn: (w: Int32Array) => void): void {
    const w = this.#words();
    if (this.#mutex.isMine()) {
      // Taken by a wait() of this thread whose code has not resumed yet (an
      // await between taking the mutex and using it lets other tasks run,
      // such as one calling reset() on its BrokenBarrierError). Every such
      // section is synchronous once resumed and reads the words afresh, so
      // acting now is as if it came first; blocking would deadlock.
      this.#acquired(w); // that take may have been a takeover from a dead holder
      fn(w);
      return;
    }
    this.#mutex.acquireSync(Infinity);
    try {
      this.#acquired(w);
      fn(w);
    } finally {
      this.#mutex.release();
    }
  }

  /** Breaks the barrier: every current and later wait rejects with BrokenBarrierError until reset(). */
  abort(): void {
    this.#locked((w) => this.#break(w));
  }

  /** Returns the barrier to its fresh state; parties waiting now get BrokenBarrierError. */
  reset(): void {
    this.#locked((w) => {
      this.#reapDead(w);
      if (this.#count(w) > 0) {
        const s = Atomics.load(w, STATE);
        if (s === FILLING || s === BROKEN || s === ACTING) Atomics.store(w, STATE, RESETTING);
      } else {
        Atomics.store(w, STATE, FILLING);
      }
      this.#notifyAll(w);
    });
  }

  get segmentName(): string {
    return this.#segment.name;
  }

  /**
   * Releases this process's mapping; pending wait()s here reject. A wait
   * counted in the round cannot leave it once the words are gone, so close()
   * first marks its slot (and ACTOR, if it runs the action) with the
   * negated pid: the next party to look takes it off COUNT, as it would a
   * dead one (the watch, within a slice, or the next wait() or reset()).
   * Left counted, the round completed with it and then drained for ever.
   * Only compare-and-swaps of words this process wrote: a fork child's copy
   * of this object marks nothing of its parent's (the pid differs), and
   * close() never waits for the mutex.
   */
  close(): void {
    const w = this.#w;
    if (w.length !== 0) {
      const me = myOwnerId();
      for (const i of this.#mySlots) Atomics.compareExchange(w, SLOTS + i, me, -me);
      this.#mySlots.clear();
      if (this.#acting && Atomics.load(w, STATE) === ACTING) Atomics.compareExchange(w, ACTOR, me, -me);
      // Our waits asleep cannot take themselves off SLEEPERS once unmapped (every notifyAll then paid a wake).
      if (this.#asleep > 0 && this.#watchGen === forkGeneration()) Atomics.sub(w, SLEEPERS, this.#asleep);
      this.#mutex.releaseIfHeldHere();
    }
    closeWaking(this.#segment, [0, SEQ]);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    this.#segment.retain();
    const t = this.#timeout;
    // Infinity does not survive JSON (handles may travel as JSON): left out, it means the same.
    return t !== undefined && t !== Infinity ? { [kHandleTag]: 'Barrier', name: this.#segment.name, timeout: t } : { [kHandleTag]: 'Barrier', name: this.#segment.name };
  }

  toString(): string {
    return this.#w.length === 0 ? 'Barrier(closed)' : `Barrier(parties=${this.parties}, waiting=${this.nWaiting}${this.broken ? ', broken' : ''})`;
  }

  /** console.log shows what toString() says. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

registerKind('Barrier', (h) => {
  const timeout = typeof h.timeout === 'number' && h.timeout >= 0 ? h.timeout : undefined;
  return attachShared(h.name, Kind.Barrier, (seg) => adopt(seg, () => new Barrier(seg.param(0), undefined, timeout)));
});
