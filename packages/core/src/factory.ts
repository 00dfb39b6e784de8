/**
 * The base class of backends' factories: it validates arguments, fills regions, wipes sources and
 * keeps the counters, so that a backend only supplies {@link SecretFactoryBase.allocate}.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { readSync } from 'node:fs';
import { MAX_SECRET_SIZE, assertFd, assertSize, invalidThis } from './assert.js';
import { ingestBytes } from './bytes.js';
import { ErrorCode, SecureMemoryRangeError } from './errors.js';
import type { Guarantees } from './guarantees.js';
import type { SecretRegion } from './region.js';
import { ManagedSecret } from './secret.js';
import type { BackendStats, FactoryStats, Secret, SecretFactory } from './types.js';

/** Fills a fresh, writable view of a region with the secret's bytes. */
export type RegionFill = (writable: Uint8Array) => void;

/**
 * Extend this to write a backend.
 * @example
 * ```ts
 * class MyFactory extends SecretFactoryBase {
 *   readonly name = 'mine';
 *   readonly guarantees = defineGuarantees({ wipesOnClose: true });
 *   protected allocate(size: number, fill: RegionFill): SecretRegion { ... }
 * }
 * ```
 */
export abstract class SecretFactoryBase implements SecretFactory {
  abstract readonly name: string;
  abstract readonly guarantees: Readonly<Guarantees>;
  #allocated = 0;
  #inUse = 0;
  /** Called by each secret once it is freed: one function for them all (a closure per secret costs ~100 bytes). */
  readonly #freed = (): void => {
    this.#inUse -= 1;
  };

  /** The largest secret this backend accepts. */
  protected readonly maxSize: number = MAX_SECRET_SIZE;

  /**
   * Allocates protected memory for `size` bytes, calls `fill` with a writable view of exactly
   * `size` bytes, then leaves the region idle (protected) and returns it. When it throws, it has
   * released everything it took; it never throws after `fill` wrote secret bytes without wiping them.
   */
  protected abstract allocate(size: number, fill: RegionFill): SecretRegion;

  /** Backend counters; `allocated` and `inUse` are added by the base class. */
  protected abstract backendStats(): BackendStats;

  static #check(self: unknown): SecretFactoryBase {
    if (typeof self === 'object' && self !== null && #allocated in self) return self as SecretFactoryBase;
    throw invalidThis('SecretFactory');
  }

  #make(size: number, fill: RegionFill): Secret {
    const region = this.allocate(size, fill);
    this.#allocated += 1;
    this.#inUse += 1;
    return new ManagedSecret(this.name, region, size, this.#freed);
  }

  /**
   * Copies `source` into protected memory, then zero-fills `source` in place. `.buffer` of `source`
   * is never read (see {@link ingestBytes}), so a small on-heap source leaves no copy in the V8 heap.
   * A source that is itself a view of a secret (handed to an action, or a `subarray` of one) is
   * copied and not wiped: its pages are read-only, and its own secret wipes them.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `source` is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when detached.
   * @throws {RangeError} `ERR_INVALID_SIZE` when it is empty or too large.
   * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`; `source` is then left as it was.
   * @example
   * ```ts
   * const key = factory.new(readKeyBytes()); // the input buffer is zeroed
   * ```
   */
  new(source: Uint8Array): Secret {
    const self = SecretFactoryBase.#check(this);
    return ingestBytes(source, 'source', self.maxSize, (size, copyInto) => self.#make(size, copyInto));
  }

  /**
   * Generates `size` bytes from the CSPRNG straight into protected memory.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number.
   * @throws {RangeError} `ERR_INVALID_SIZE` when it is not a whole number from 1 to the maximum.
   * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
   */
  createRandom(size: number): Secret {
    const self = SecretFactoryBase.#check(this);
    assertSize(size, 'size', self.maxSize);
    return self.#make(size, (writable) => {
      randomFillSync(writable);
    });
  }

  /**
   * Reads exactly `size` bytes from file descriptor `fd` straight into protected memory: the bytes
   * never pass through the JavaScript heap. For a key file, a pipe or stdin (a blocking descriptor).
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `fd` or `size` is not a number; 
   * @throws {RangeError} `ERR_OUT_OF_RANGE` for a negative or fractional `fd`; `ERR_INVALID_SIZE` for a bad `size`, or when the descriptor ends before `size` bytes (nothing is kept).
   * @throws {Error} the system error of `read(2)` (`EBADF`, `EAGAIN` for a non-blocking descriptor, ...); nothing is kept.
   * @example
   * ```ts
   * const fd = openSync('/run/secrets/kek', 'r');
   * using kek = factory.fromFd(fd, 32);
   * closeSync(fd);
   * ```
   */
  fromFd(fd: number, size: number): Secret {
    const self = SecretFactoryBase.#check(this);
    assertFd(fd, 'fd');
    assertSize(size, 'size', self.maxSize);
    return self.#make(size, (writable) => {
      let done = 0;
      while (done < size) {
        const n = readSync(fd, writable, done, size - done, null);
        if (n === 0) {
          throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, `The descriptor ended after ${done} of ${size} bytes`);
        }
        done += n;
      }
    });
  }

  /** The counters: secrets allocated and in use, plus the backend's own (locked bytes, mappings, ...). */
  stats(): FactoryStats {
    const self = SecretFactoryBase.#check(this);
    return { ...self.backendStats(), allocated: self.#allocated, inUse: self.#inUse };
  }

  toString(): string {
    return `SecretFactory(${this.name})`;
  }
}
