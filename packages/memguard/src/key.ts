/**
 * The process key that seals every Enclave, Stream chunk and enclave-mode secret of this thread.
 *
 * It is never stored whole at rest. Its state is one region, in secret memory (`memfd_secret(2)`:
 * out of the kernel's direct map, unreadable through `/proc/<pid>/mem` or ptrace, locked, never
 * dumped, kept from forked children) where the kernel has it, else in a guarded, locked,
 * `MADV_DONTDUMP`, `MADV_WIPEONFORK` mapping:
 *
 * ```
 * [guard page][pre-key: 16 KiB | right: 32 | key: 32 | scratch][guard page]
 * ```
 *
 * The key is `K = SHA-256(pre-key) XOR right`: memguard's coffer (`key = H(left) XOR right`) with
 * OpenSSH's 16 KiB random pre-key as its left part, so that a read-out of the state with a single
 * wrong bit gives a key unrelated to `K`. Both parts are re-randomised without changing `K`
 * (`pre' = pre XOR mask`, `right' = right XOR H(pre) XOR H(pre')`) every 500 ms by an unref'd timer,
 * and on use whenever that is overdue (a busy event loop). `K` itself is derived into the state on
 * the first use in an event-loop turn and wiped by an unref'd `setImmediate` at the end of that turn,
 * so a burst of opens pays for one 16 KiB hash. {@link purgeKey} wipes and unmaps the state: the next
 * use makes a new key, and what was sealed before can no longer be opened.
 *
 * Nonces are a random 32-bit prefix per key and a 64-bit counter: they never repeat under a key.
 * Each thread (worker) has its own key.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { memlockLimitError } from '@secure-memory/core/backend';
import { BACKEND, assertInRange, systemError } from './errors.js';
import { addExitTask } from './lifetime.js';
import { mapBudget } from './map-budget.js';
import { type Addon, addon } from './native.js';
import { type Mapping, mapFresh, pageSize, unmapMapping, unmapOrDefer } from './mapping.js';

/** How often the key's parts are re-randomised, in milliseconds (memguard's coffer: 500 ms). */
export const REKEY_INTERVAL_MS = 500;

/** Where the key state lives. */
export type KeyStorage = 'secret-memory' | 'locked-memory';

interface KeyState {
  readonly lib: Addon;
  /** The first byte of the state (the pre-key). */
  readonly state: bigint;
  /** Bytes of the state's pages. */
  readonly length: number;
  readonly storage: KeyStorage;
  /** Releases the memory (after it was wiped). */
  readonly release: () => void;
  readonly prefix: number;
  counter: number;
  derived: boolean;
  lastRekey: number;
  readonly timer: NodeJS.Timeout;
  forget: NodeJS.Immediate | undefined;
}

let current: KeyState | undefined;
/** Test hook: `false` makes the next key use locked memory even where secret memory exists. */
let useSecretMemory = true;
/** Incremented by every purge: boxes sealed under an earlier epoch cannot be opened. */
let epoch = 0;
let rekeys = 0;
let derivations = 0;

/** What {@link keyInfo} reports. */
export interface KeyInfo {
  /** Where the key state lives, or `undefined` before the first use (and after a purge). */
  storage: KeyStorage | undefined;
  /** The key generation: 0 at start, one more after each purge. */
  epoch: number;
  /** Times the parts were re-randomised (timer and use), over every generation. */
  rekeys: number;
  /** Times the key was derived from the pre-key (once per event-loop turn that used it). */
  derivations: number;
  /** True while the derived key is held (until the end of the current event-loop turn). */
  derived: boolean;
}

/** Facts about the process key, for tests, benchmarks and `doctor`. */
export function keyInfo(): KeyInfo {
  return { storage: current?.storage, epoch, rekeys, derivations, derived: current?.derived ?? false };
}

function cryptoError(what: string): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, `OpenSSL failed to ${what}`, { backend: BACKEND });
}

/** The key state in secret memory, or `undefined` where the kernel has none. */
function mapSecretState(lib: Addon, length: number): { state: bigint; release: () => void } | undefined {
  const page = pageSize();
  const total = length + 2 * page;
  const base = lib.mapSecret(total, page, length);
  if (typeof base === 'number') {
    // Secret memory is charged to RLIMIT_MEMLOCK: its mmap says EAGAIN when it would exceed it.
    if (base === lib.EAGAIN) throw memlockLimitError(length, { backend: BACKEND, errno: base, syscall: 'mmap' });
    return undefined; // ENOSYS (no secret memory, or refused by seccomp), ...: fall back to locked memory
  }
  const state = base + BigInt(page);
  // Secret memory is locked and left out of core dumps by the kernel; it is a shared mapping, so a
  // forked child would share it: MADV_DONTFORK keeps it out of children.
  let errno = lib.advise(state, length, lib.MADV_DONTFORK);
  if (errno === 0) errno = lib.advise(base, total, lib.MADV_DONTDUMP);
  if (errno !== 0) {
    unmapOrDefer(lib, base, total, undefined, false); // nothing was written yet
    throw systemError(ErrorCode.PROTECTION_FAILED, 'madvise', errno, total);
  }
  mapBudget.added();
  return { state, release: () => unmapOrDefer(lib, base, total, undefined, true) };
}

function createKey(): KeyState {
  const lib = addon();
  const page = pageSize();
  const length = Math.ceil(lib.KEY_STATE_BYTES / page) * page;
  let storage: KeyStorage = 'secret-memory';
  let held = useSecretMemory ? mapSecretState(lib, length) : undefined;
  if (held === undefined) {
    storage = 'locked-memory';
    const map: Mapping = mapFresh(lib, length);
    held = { state: map.inner, release: () => unmapMapping(lib, map) };
  }
  const { state, release } = held;
  if (lib.keyInit(state) !== 0) {
    lib.wipe(state, length);
    release();
    throw cryptoError('generate the process key');
  }
  const timer = setInterval(tick, REKEY_INTERVAL_MS);
  timer.unref(); // never keeps the process alive
  const key: KeyState = {
    lib,
    state,
    length,
    storage,
    release,
    prefix: randomBytes(4).readUInt32BE(0),
    counter: 0,
    derived: false,
    lastRekey: performance.now(),
    timer,
    forget: undefined,
  };
  addExitTask(purgeKeyAtExit);
  return key;
}

function rekey(key: KeyState, now: number): void {
  // A failure leaves the state as it was (and the key unchanged): nothing to undo, try again later.
  if (key.lib.keyRekey(key.state) === 0) rekeys += 1;
  key.lastRekey = now;
}

function tick(): void {
  if (current !== undefined) rekey(current, performance.now());
}

/** Wipes the derived key (the parts stay). */
function forget(key: KeyState): void {
  if (key.forget !== undefined) clearImmediate(key.forget);
  key.forget = undefined;
  if (!key.derived) return;
  key.lib.wipe(key.state + BigInt(key.lib.KEY_OFFSET), key.lib.KEY_BYTES);
  key.derived = false;
}

/**
 * The key, ready: made on first use, re-keyed when overdue, derived for this event-loop turn.
 * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED` when its
 * memory is refused; `ERR_BACKEND_UNAVAILABLE` when OpenSSL fails.
 */
function useKey(): KeyState {
  current ??= createKey();
  const key = current;
  const now = performance.now();
  if (now - key.lastRekey >= REKEY_INTERVAL_MS) rekey(key, now);
  if (!key.derived) {
    if (key.lib.keyDerive(key.state) !== 0) throw cryptoError('derive the process key');
    derivations += 1;
    key.derived = true;
    const immediate = setImmediate(() => forget(key));
    immediate.unref();
    key.forget = immediate;
  }
  return key;
}

/**
 * Makes the process key ready (made on first use, derived for this turn) before anything else is
 * allocated, so that a seal fails on the key before it has copied a caller's bytes anywhere.
 * @throws {SecureMemoryError} as {@link useKey}.
 */
export function readyKey(): void {
  useKey();
}

/**
 * A sealed box: `[nonce: 12][ciphertext][tag: 16]` under the key of `epoch`, bound to its container
 * by `id` (the associated data): the box of another container, copied over this one's, does not
 * open (`ERR_INTEGRITY`).
 */
export interface Sealed {
  readonly box: Uint8Array;
  readonly size: number;
  readonly epoch: number;
  /** The container's id, unique in the process: the associated data of the box. */
  readonly id: number;
}

/** The id of the next container sealed (never reused in the process). */
let nextId = 1;

/**
 * Seals `size` bytes at `address` (readable memory of a locked region) under the process key, into
 * a new container (a new id), without making a view of them. There is no way to seal from a heap
 * view: reading a caller's small typed array from native code makes V8 move its bytes off the heap
 * and abandon the old copy; callers copy into a locked region first (see `ingest`).
 * @throws {SecureMemoryError} as {@link useKey}.
 */
export function sealAt(address: bigint, size: number): Sealed {
  // Ciphertext is not secret: an ordinary buffer (small ones share Node's pool slab).
  const box = Buffer.allocUnsafe(size + addon().SEAL_OVERHEAD);
  const { epoch: sealedEpoch, id } = sealInto(address, size, box);
  return { box, size, epoch: sealedEpoch, id };
}

/**
 * Seals the bytes of `source` straight from where they are (no copy into a locked region first),
 * into a new container. Only for arrays of at least {@link SEAL_DIRECT_MIN} bytes: V8 never keeps
 * those inside the heap, so letting native code read them moves nothing and leaves no copy behind
 * (for a small array it would: see `sealAt`). The caller wipes `source`.
 * @throws {SecureMemoryError} as {@link useKey}; `ERR_BACKEND_UNAVAILABLE` when OpenSSL fails.
 */
export function sealFrom(source: Uint8Array): Sealed {
  const key = useKey();
  const size = source.byteLength;
  const box = Buffer.allocUnsafe(size + key.lib.SEAL_OVERHEAD);
  writeNonce(key, box);
  const id = nextId;
  nextId += 1;
  if (key.lib.sealFrom(key.state, source, box, id) !== 0) throw cryptoError('seal');
  return { box, size, epoch, id };
}

/**
 * The fewest bytes {@link sealFrom} seals straight from a caller's array: a page, far above the
 * 64 bytes V8 keeps inside the heap by default (`--typed-array-max-size-in-heap`). Below it a seal
 * copies into a locked region first, which costs little at that size.
 */
export const SEAL_DIRECT_MIN = 4096;

/**
 * As {@link sealAt}, into a box the caller provides (`size` + `SEAL_OVERHEAD` bytes of ordinary
 * memory: a slot of an enclave-mode factory's arena). Returns the new container's id and the key
 * epoch. On failure the box holds no ciphertext worth keeping (the caller zero-fills it).
 * @throws {SecureMemoryError} as {@link useKey}; `ERR_BACKEND_UNAVAILABLE` when OpenSSL fails.
 */
export function sealInto(address: bigint, size: number, box: Uint8Array): { epoch: number; id: number } {
  const key = useKey();
  writeNonce(key, box);
  const id = nextId;
  nextId += 1;
  if (key.lib.sealAt(key.state, address, size, box, id) !== 0) throw cryptoError('seal');
  return { epoch, id };
}

/** Writes the next nonce of `key` into the first 12 bytes of `box` (big-endian prefix and counter). */
function writeNonce(key: KeyState, box: Uint8Array): void {
  const counter = key.counter;
  key.counter = counter + 1;
  const words = [key.prefix, Math.floor(counter / 0x1_0000_0000), counter >>> 0];
  for (let w = 0; w < 3; w += 1) {
    const word = words[w] as number;
    box[4 * w] = word >>> 24;
    box[4 * w + 1] = (word >>> 16) & 0xff;
    box[4 * w + 2] = (word >>> 8) & 0xff;
    box[4 * w + 3] = word & 0xff;
  }
}

/** True when `sealed` was made under the current key (no purge since). */
export function isCurrent(sealed: Sealed): boolean {
  return sealed.epoch === epoch;
}

/** The error for a box sealed before a purge. */
export function purgedError(): SecureMemoryError {
  return new SecureMemoryError(
    ErrorCode.INTEGRITY,
    'The process key was purged: what was sealed under it can no longer be opened',
    { backend: BACKEND },
  );
}

/**
 * Checks `sealed` and decrypts it straight into `destination` (`sealed.size` writable bytes of a
 * locked region). On failure nothing of the plaintext is left there.
 * @throws {SecureMemoryError} `ERR_INTEGRITY` when it was sealed before a purge, or its tag does not
 * match (the ciphertext was modified, or the key state was damaged); as {@link useKey}.
 */
export function openInto(sealed: Sealed, destination: bigint): void {
  if (sealed.epoch !== epoch) throw purgedError();
  const key = useKey();
  const status = key.lib.open(key.state, sealed.box, destination, sealed.id);
  if (status === 0) return;
  if (status === 1) {
    throw new SecureMemoryError(
      ErrorCode.INTEGRITY,
      'Authentication failed: the ciphertext was modified or belongs to another container, or the process key was damaged',
      { backend: BACKEND },
    );
  }
  throw cryptoError('open');
}

/** Wipes and releases the key state; the next use makes a new key, and older boxes cannot be opened. */
export function purgeKey(): void {
  epoch += 1;
  const key = current;
  if (key === undefined) return;
  current = undefined;
  clearInterval(key.timer);
  if (key.forget !== undefined) clearImmediate(key.forget);
  key.lib.wipe(key.state, key.length);
  key.release();
}

function purgeKeyAtExit(): void {
  purgeKey();
}

/**
 * Test hook: flips bit `bit` of the pre-key (0 to 131071) with `xorByte` (the test build's: the
 * release addon has no such call) and drops the derived key, as a read-out with one bit error would
 * see the state. Opening anything sealed before then fails.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` for a bit outside the pre-key.
 */
export function flipPreKeyBit(bit: number, xorByte: (address: bigint, mask: number) => void): void {
  const key = useKey();
  const bits = key.lib.PRE_KEY_BYTES * 8;
  assertInRange(bit, 'bit', 0, bits - 1);
  xorByte(key.state + BigInt(bit >>> 3), 1 << (bit & 7));
  forget(key);
}

/**
 * Test hook: where the next key (after a purge) keeps its state: `'locked-memory'` forces the
 * fallback used where the kernel has no secret memory; `'auto'` restores the default.
 */
export function setKeyStorage(storage: 'auto' | 'locked-memory'): void {
  useSecretMemory = storage === 'auto';
}

/** Test hook: re-randomises the key's parts now (the key does not change). */
export function rekeyNow(): void {
  const key = useKey();
  forget(key);
  rekey(key, performance.now());
}
