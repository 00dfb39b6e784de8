/**
 * One secret's `sodium_malloc` memory, as core's {@link SecretRegion}: read-only during access,
 * no access when idle, zeroed and canary-checked at close.
 *
 * When a protection cannot be changed (both `sodium_mprotect_*` and the same mprotect made again
 * fail), the states are these:
 * - opening an access: `ERR_PROTECTION_FAILED`, the access does not start, the pages stay PROT_NONE;
 * - ending an access: `ERR_PROTECTION_FAILED`, the access has ended, the pages stay read-only
 *   (never writable) and the secret stays usable; the region is "exposed" and PROT_NONE is tried
 *   again at its next access's end, at the factory's next allocation, and at close;
 * - closing: the data is zeroed as soon as one attempt to make it writable passes; when none does,
 *   the memory is still released (libsodium zeroes and unmaps it on a later turn of the event loop)
 *   and `close()` throws `ERR_PROTECTION_FAILED`.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import type { RegionLocation, SecretRegion } from '@secure-memory/core/backend';
import { releaseMappings } from './budget.js';
import { type Libsodium, lockedLength, unprotectedStart } from './layout.js';
import { BACKEND, CANARY_SIZE, type Protection, type SodiumBuffer } from './native.js';

/** What a region tells its factory when it is freed. */
interface RegionRelease {
  /** Bytes this region held locked (0 when the lock did not hold, in best-effort mode). */
  lockedBytes: number;
  /** True when the canary before the data was found damaged. */
  damaged: boolean;
}

/** What a region tells its factory as it goes along. */
export interface RegionEvents {
  /** Called once, after the memory is handed back. */
  onFree(region: SodiumRegion, release: RegionRelease): void;
  /** Called when the region's pages stay readable while idle (`true`), and when they are PROT_NONE again (`false`). */
  onExposed(region: SodiumRegion, exposed: boolean): void;
}

/** `ERR_PROTECTION_FAILED` for a failed `sodium_mprotect_<protection>` (and mprotect behind it). */
export function protectionFailed(protection: Protection, errno: number): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.PROTECTION_FAILED, `sodium_mprotect_${protection} failed with errno ${errno}`, {
    backend: BACKEND,
    errno,
    syscall: 'mprotect',
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
  /** The pages libsodium protects: the canary and the data, page-rounded. */
  readonly #start: bigint;
  readonly #length: number;
  readonly #lockedBytes: number;
  readonly #events: RegionEvents;
  #writable = false;
  #wiped = false;
  #open = false;
  #exposed = false;
  #retired = false;
  /** The errno of a wipe that could not make the pages writable; free() tries again. */
  #wipeErrno = 0;

  /**
   * @param lib the checked libsodium
   * @param buf the idle (no-access) allocation of exactly `view.byteLength` bytes
   * @param view the view over `buf` that actions receive
   * @param address the address of the first data byte
   * @param lockedBytes bytes locked for it (0 when unlocked)
   * @param events what the factory is told
   */
  constructor(lib: Libsodium, buf: SodiumBuffer, view: Uint8Array, address: bigint, lockedBytes: number, events: RegionEvents) {
    this.#lib = lib;
    this.#buf = buf;
    this.#view = view;
    this.#address = address;
    this.#size = view.byteLength;
    this.#start = unprotectedStart(address, lib.native.pageSize);
    this.#length = lockedLength(this.#size, lib.native.pageSize);
    this.#lockedBytes = lockedBytes;
    this.#events = events;
  }

  /** The live buffer; a buffer whose ArrayBuffer was transferred away is refused before libsodium sees it (it aborts on NULL). */
  #attached(): SodiumBuffer {
    const buf = this.#buf;
    if (buf === undefined || buf.buffer.byteLength !== this.#size) throw detachedError();
    return buf;
  }

  #protect(buf: SodiumBuffer, protection: Protection): number {
    return this.#lib.native.protect(buf, protection, this.#start, this.#length);
  }

  /**
   * Makes the pages read-only and returns the view.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` (errno, `syscall: 'mprotect'`): no access starts, the pages stay as they were.
   */
  protectRead(): Uint8Array {
    const errno = this.#protect(this.#attached(), 'readonly');
    if (errno !== 0) throw protectionFailed('readonly', errno);
    this.#open = true;
    return this.#view;
  }

  /**
   * Makes the pages PROT_NONE again.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` (errno, `syscall: 'mprotect'`): the access has
   * ended all the same; the pages stay read-only until a later attempt passes (see the module notes).
   */
  protectIdle(): void {
    this.#open = false;
    const errno = this.#protect(this.#attached(), 'noaccess');
    if (errno !== 0) {
      if (!this.#exposed) {
        this.#exposed = true;
        this.#events.onExposed(this, true);
      }
      throw protectionFailed('noaccess', errno);
    }
    if (this.#exposed) this.#unexpose();
  }

  #unexpose(): void {
    this.#exposed = false;
    this.#events.onExposed(this, false);
  }

  /** Tries PROT_NONE again on an exposed region that is not in an access; true when it holds now. */
  reprotect(): boolean {
    if (!this.#exposed) return true;
    if (this.#open) return false;
    const buf = this.#buf;
    if (buf === undefined || buf.buffer.byteLength !== this.#size || this.#protect(buf, 'noaccess') !== 0) return false;
    this.#unexpose();
    return true;
  }

  /**
   * Makes the pages writable and zeroes the data with `sodium_memzero`, before anything is freed.
   * When the pages cannot be made writable it leaves the work, and the error, to {@link free},
   * which core always calls right after.
   */
  wipe(): void {
    const buf = this.#attached();
    const errno = this.#protect(buf, 'readwrite');
    if (errno !== 0) {
      this.#wipeErrno = errno;
      return;
    }
    this.#writable = true;
    this.#lib.native.memzero(this.#view);
    this.#wiped = true;
  }

  /** A fresh view of the data on an ArrayBuffer of its own (core hands it to actions; the sodium buffer is never handed out). */
  exposeView(): Uint8Array {
    return this.#lib.native.view(this.#address, this.#size);
  }

  /**
   * Zeroes the data if {@link wipe} could not, compares the canary with the reference (a damaged
   * one is reported and rewritten, so that libsodium's own check in the deferred `sodium_free` does
   * not kill the process) and unlocks the pages; the factory's counters drop it. Returns whether the
   * canary was damaged.
   */
  #settle(buf: SodiumBuffer): boolean {
    if (this.#exposed) this.#unexpose();
    const { native, referenceCanary } = this.#lib;
    if (!this.#writable) {
      const errno = this.#protect(buf, 'readwrite');
      if (errno === 0) this.#writable = true;
      else this.#wipeErrno = errno;
    }
    let damaged = false;
    if (this.#writable) {
      if (!this.#wiped) {
        native.memzero(this.#view);
        this.#wiped = true;
      }
      const canary = native.view(this.#address - BigInt(CANARY_SIZE), CANARY_SIZE);
      if (!timingSafeEqual(canary, referenceCanary)) {
        damaged = true;
        canary.set(referenceCanary);
      }
    }
    // Give the lock back now, as the counters do. A failure leaves it to libsodium's deferred free,
    // which unlocks the same pages (and munmap unlocks them in any case).
    if (this.#lockedBytes > 0) native.munlock(this.#start, this.#lockedBytes);
    this.#events.onFree(this, { lockedBytes: this.#lockedBytes, damaged });
    return damaged;
  }

  #report(damaged: boolean): void {
    if (damaged) {
      throw new SecureMemoryError(ErrorCode.INTEGRITY, 'The canary before the secret was overwritten: memory just before it was written to', {
        backend: BACKEND,
      });
    }
    if (!this.#wiped) throw protectionFailed('readwrite', this.#wipeErrno);
  }

  /**
   * After the wipe, while a view handed to an action may still be reachable: checks the canary,
   * unlocks, and makes the pages PROT_NONE, but keeps the allocation (its addresses) until
   * {@link free}, so that a kept view faults instead of reading a later secret.
   * @throws {SecureMemoryError} as {@link free}.
   */
  retire(): void {
    const buf = this.#buf;
    if (buf === undefined || this.#retired) return;
    this.#retired = true;
    const damaged = this.#settle(buf);
    if (this.#writable && this.#protect(buf, 'noaccess') === 0) this.#writable = false;
    this.#report(damaged);
  }

  /**
   * Zeroes, checks the canary and unlocks (unless {@link retire} did), then hands the memory to
   * `sodium_free`, which detaches the buffer at once; libsodium zeroes the pages again and unmaps
   * them from the buffer's finalizer, on a later turn of the event loop.
   * @throws {SecureMemoryError} after freeing: `ERR_INTEGRITY` when the canary was damaged or the memory
   * was detached; `ERR_PROTECTION_FAILED` when the pages could not be made writable to zero them.
   */
  free(): void {
    const buf = this.#buf;
    if (buf === undefined) return;
    this.#buf = undefined;
    if (this.#retired) {
      this.#lib.native.free(buf);
      releaseMappings();
      this.#lib.native.settle();
      return;
    }
    if (buf.buffer.byteLength !== this.#size) {
      if (this.#exposed) this.#unexpose();
      this.#events.onFree(this, { lockedBytes: this.#lockedBytes, damaged: false });
      throw detachedError();
    }
    const damaged = this.#settle(buf);
    this.#lib.native.free(buf);
    releaseMappings();
    this.#lib.native.settle();
    this.#report(damaged);
  }

  location(): RegionLocation {
    return { address: this.#address, size: this.#size };
  }
}
