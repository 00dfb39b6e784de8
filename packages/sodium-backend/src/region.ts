/**
 * One secret's `sodium_malloc` memory, as core's {@link SecretRegion}: read-only during access,
 * no access when idle, zeroed and canary-checked at close.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { ErrorCode, type RegionLocation, type SecretRegion, SecureMemoryError } from '@secure-memory/core';
import { type Libsodium, unprotectedStart } from './layout.js';
import { BACKEND, CANARY_SIZE, type SodiumBuffer } from './native.js';

/** What a region tells its factory when it is freed. */
export interface RegionRelease {
  /** Bytes this region held locked (0 when the lock did not hold, in best-effort mode). */
  lockedBytes: number;
  /** True when the canary before the data was found damaged. */
  damaged: boolean;
}

function protectionFailed(operation: string, cause: unknown): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.PROTECTION_FAILED, `sodium_mprotect_${operation} failed`, {
    backend: BACKEND,
    syscall: 'mprotect',
    cause,
  });
}

function detachedError(): SecureMemoryError {
  return new SecureMemoryError(
    ErrorCode.INTEGRITY,
    "The secret's memory was detached from it (its ArrayBuffer was transferred): it can no longer be used",
    { backend: BACKEND },
  );
}

/**
 * A `sodium_malloc` allocation. Its view is the same for every access (it cannot be revoked
 * without freeing); outside an access the pages are PROT_NONE, so a kept view faults.
 */
export class SodiumRegion implements SecretRegion {
  readonly #lib: Libsodium;
  #buf: SodiumBuffer | undefined;
  readonly #view: Uint8Array;
  readonly #address: bigint;
  readonly #size: number;
  readonly #lockedBytes: number;
  readonly #onFree: (release: RegionRelease) => void;
  #writable = false;

  /**
   * @param lib the checked libsodium
   * @param buf the idle (no-access) allocation of exactly `view.byteLength` bytes
   * @param view the view over `buf` that actions receive
   * @param address the address of the first data byte
   * @param lockedBytes bytes locked for it (0 when unlocked)
   * @param onFree called once, after the memory is handed back
   */
  constructor(
    lib: Libsodium,
    buf: SodiumBuffer,
    view: Uint8Array,
    address: bigint,
    lockedBytes: number,
    onFree: (release: RegionRelease) => void,
  ) {
    this.#lib = lib;
    this.#buf = buf;
    this.#view = view;
    this.#address = address;
    this.#size = view.byteLength;
    this.#lockedBytes = lockedBytes;
    this.#onFree = onFree;
  }

  /** The live buffer; a buffer whose ArrayBuffer was transferred away is refused before libsodium sees it (it aborts on NULL). */
  #attached(): SodiumBuffer {
    const buf = this.#buf;
    if (buf === undefined || buf.buffer.byteLength !== this.#size) throw detachedError();
    return buf;
  }

  protectRead(): Uint8Array {
    const buf = this.#attached();
    try {
      this.#lib.native.sodium.sodium_mprotect_readonly(buf);
    } catch (error) {
      throw protectionFailed('readonly', error);
    }
    return this.#view;
  }

  protectIdle(): void {
    const buf = this.#attached();
    try {
      this.#lib.native.sodium.sodium_mprotect_noaccess(buf);
    } catch (error) {
      throw protectionFailed('noaccess', error);
    }
  }

  /** Makes the pages writable and zeroes the data with `sodium_memzero`, before anything is freed. */
  wipe(): void {
    const buf = this.#attached();
    try {
      this.#lib.native.sodium.sodium_mprotect_readwrite(buf);
    } catch (error) {
      throw protectionFailed('readwrite', error);
    }
    this.#writable = true;
    this.#lib.native.sodium.sodium_memzero(this.#view);
  }

  /**
   * Compares the canary with the reference; a damaged one is reported and rewritten, so that
   * libsodium's own check in the deferred `sodium_free` does not kill the process. Then unlocks the
   * pages (the data is zero by now) and hands the memory to `sodium_free`, which detaches the buffer
   * at once; libsodium zeroes the pages again and unmaps them from the buffer's finalizer, on a
   * later turn of the event loop.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` after freeing, when the canary was damaged or the memory was detached.
   */
  free(): void {
    const buf = this.#buf;
    if (buf === undefined) return;
    this.#buf = undefined;
    if (buf.buffer.byteLength !== this.#size) {
      this.#onFree({ lockedBytes: this.#lockedBytes, damaged: false });
      throw detachedError();
    }
    const { native, referenceCanary } = this.#lib;
    let damaged = false;
    try {
      if (!this.#writable) native.sodium.sodium_mprotect_readwrite(buf);
      this.#writable = true;
    } catch {
      // Unreadable canary: libsodium's own check in sodium_free still runs.
    }
    if (this.#writable) {
      const canary = native.view(this.#address - BigInt(CANARY_SIZE), CANARY_SIZE);
      if (!timingSafeEqual(canary, referenceCanary)) {
        damaged = true;
        canary.set(referenceCanary);
      }
    }
    // Give the lock back now, as the counters do: libsodium's own munlock only runs with its deferred free.
    if (this.#lockedBytes > 0) native.munlock(unprotectedStart(this.#address, native.pageSize), this.#lockedBytes);
    native.sodium.sodium_free(buf);
    this.#onFree({ lockedBytes: this.#lockedBytes, damaged });
    if (damaged) {
      throw new SecureMemoryError(ErrorCode.INTEGRITY, 'The canary before the secret was overwritten: memory just before it was written to', {
        backend: BACKEND,
      });
    }
  }

  location(): RegionLocation {
    return { address: this.#address, size: this.#size };
  }
}
