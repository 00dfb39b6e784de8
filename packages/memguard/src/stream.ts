/**
 * memguard's Stream: an in-memory encrypted container for more data than should be locked at once.
 * Data is sealed in chunks of {@link STREAM_CHUNK_SIZE} bytes under the process key, and only the
 * chunk being read is ever plaintext, in a guarded region of the pool.
 * @module
 */
import { ErrorCode, SecureMemoryRangeError } from '@secure-memory/core';
import { Redacted, assertBytes, invalidThis } from '@secure-memory/core/backend';
import { type LockedBuffer, leaseBuffer } from './buffer.js';
import { openSealed, sealCopy } from './enclave.js';
import { frozen, integrityError, prepared } from './errors.js';
import { type Sealed, isCurrent, openInto, purgedError, sealAt } from './key.js';
import { GuardedRegion } from './region.js';
import { Ledger } from './mapping.js';
import { assertReadable, writable } from './views.js';

/** The largest chunk a Stream seals (16 KiB, memguard's four pages). */
export const STREAM_CHUNK_SIZE = 16 * 1024;

/** The largest LockedBuffer `flush()` makes. */
const MAX_FLUSH = 2 ** 30;


/** Regions that hold one chunk's plaintext while `read()` copies it out. */
const reading = new Ledger();

/**
 * An encrypted, in-memory FIFO of bytes, after memguard's Stream: `write()` seals, `read()`,
 * `next()` and `flush()` open. Each chunk is an independent sealed box (ChaCha20-Poly1305, a nonce
 * of its own); at rest the Stream costs heap memory (the data plus 28 bytes per chunk), no locked
 * memory.
 * @example
 * ```ts
 * const stream = new Stream();
 * stream.write(secretBytes);           // secretBytes is zeroed
 * using all = stream.flush();          // a frozen LockedBuffer, or undefined when empty
 * ```
 */
export class Stream extends Redacted {
  readonly #chunks: Sealed[] = [];
  #head = 0;
  #size = 0;

  static #check(self: unknown): Stream {
    if (typeof self === 'object' && self !== null && #chunks in self) return self as Stream;
    throw invalidThis('Stream');
  }

  /** Bytes held now (written and not yet read). */
  get size(): number {
    return Stream.#check(this).#size;
  }

  #front(): Sealed | undefined {
    return this.#chunks[this.#head];
  }

  #shift(): void {
    this.#head += 1;
    if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #unshift(sealed: Sealed): void {
    if (this.#head > 0) {
      this.#head -= 1;
      this.#chunks[this.#head] = sealed;
    } else {
      this.#chunks.unshift(sealed);
    }
  }

  /**
   * Seals `src` into the stream, in chunks of at most {@link STREAM_CHUNK_SIZE} bytes, then
   * zero-fills `src`. Returns the number of bytes written (`src.byteLength`). Each chunk is copied
   * into a guarded region and sealed from there; `src.buffer` of a small source is never read.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `src` is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when detached.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when `src` is a read-only view of this
   * package's memory (nothing is written).
   */
  write(src: Uint8Array): number {
    const self = Stream.#check(this);
    assertBytes(src, 'src');
    assertReadable(src);
    if (!writable(src)) throw frozen('The "src" argument');
    const length = src.byteLength;
    const sealed: Sealed[] = [];
    for (let offset = 0; offset < length; offset += STREAM_CHUNK_SIZE) {
      const end = Math.min(length, offset + STREAM_CHUNK_SIZE);
      // A subarray only of a source longer than a chunk, whose bytes are never on the V8 heap.
      sealed.push(sealCopy(offset === 0 && end === length ? src : src.subarray(offset, end)));
    }
    src.fill(0);
    for (const chunk of sealed) self.#chunks.push(chunk);
    self.#size += length;
    return length;
  }

  /**
   * Opens the next chunk and copies up to `target.byteLength` bytes of it into `target` (memguard's
   * Read): at most one chunk per call. What does not fit is sealed again and stays at the front.
   * Returns the number of bytes copied, 0 when the stream is empty (or `target` is). `target` is
   * the caller's memory: wipe it when done.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `target` is not a Uint8Array.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when `target` is a read-only view;
   * `ERR_INTEGRITY` when the chunk was tampered with or sealed before a purge (the stream is then
   * unchanged).
   */
  read(target: Uint8Array): number {
    const self = Stream.#check(this);
    assertBytes(target, 'target');
    assertReadable(target);
    if (!writable(target)) throw frozen('The "target" argument');
    const chunk = self.#front();
    if (chunk === undefined) return 0;
    // An empty target reads nothing, but a chunk that can no longer be opened is still reported.
    if (!isCurrent(chunk)) throw purgedError();
    if (target.byteLength === 0) return 0;
    const region = GuardedRegion.lease(chunk.size, reading);
    let count: number;
    let rest: Sealed | undefined;
    try {
      openInto(chunk, region.data);
      const view = region.view(true);
      try {
        count = Math.min(target.byteLength, chunk.size);
        target.set(view.subarray(0, count));
      } finally {
        region.revoke(view);
      }
      if (count < chunk.size) rest = sealAt(region.data + BigInt(count), chunk.size - count);
    } finally {
      // biome-ignore lint/correctness/noUnsafeFinally: a damaged canary outranks the error in flight: ERR_INTEGRITY must surface
      if (!region.destroy()) throw integrityError();
    }
    self.#shift();
    if (rest !== undefined) self.#unshift(rest);
    self.#size -= count;
    return count;
  }

  /**
   * Opens the next chunk into a frozen LockedBuffer and removes it from the stream (memguard's
   * Next). Returns `undefined` when the stream is empty.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when the chunk was tampered with or sealed before a
   * purge (it stays in the stream); `ERR_MEMLOCK_LIMIT`... when no region can be had.
   */
  next(): LockedBuffer | undefined {
    const self = Stream.#check(this);
    const chunk = self.#front();
    if (chunk === undefined) return undefined;
    const buffer = openSealed(chunk);
    self.#shift();
    self.#size -= chunk.size;
    return buffer;
  }

  /**
   * Opens every chunk, in order, straight into one frozen LockedBuffer of `size` bytes, and empties
   * the stream (memguard's Flush). Returns `undefined` when the stream is empty. All or nothing:
   * when a chunk fails, the buffer is wiped and destroyed and the stream is unchanged.
   * @throws {RangeError} `ERR_INVALID_SIZE` when the stream holds more than 1 GiB (read it with `next()`).
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when a chunk was tampered with or sealed before a
   * purge; `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
   */
  flush(): LockedBuffer | undefined {
    const self = Stream.#check(this);
    const size = self.#size;
    if (size === 0) return undefined;
    if (size > MAX_FLUSH) {
      throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The stream holds more than 1 GiB: read it with next()');
    }
    const { buffer, region } = leaseBuffer(size, false);
    prepared(buffer, () => {
      let offset = 0;
      for (let i = self.#head; i < self.#chunks.length; i += 1) {
        const chunk = self.#chunks[i] as Sealed;
        openInto(chunk, region.data + BigInt(offset));
        offset += chunk.size;
      }
      region.protect('read');
    });
    self.#chunks.length = 0;
    self.#head = 0;
    self.#size = 0;
    return buffer;
  }

  /** The redacted form, such as `Stream(40960 bytes)`. */
  override toString(): string {
    return `Stream(${Stream.#check(this).#size} bytes)`;
  }

  get [Symbol.toStringTag](): string {
    return 'Stream';
  }
}
