/**
 * The control backend: plain, unprotected memory that claims nothing. It is the testkit's proof
 * that its scanners see plaintext where it is; with the `claim` option it becomes a liar that the
 * testkit must catch. Never use it for real secrets.
 * @module
 */
import {
  type BackendStats,
  type GuaranteeFlag,
  type Guarantees,
  ErrorCode,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  type RegionFill,
  SecretFactoryBase,
  type SecretRegion,
  assertOptions,
  defineGuarantees,
  isGuaranteeFlag,
} from '@secure-memory/core/backend';
import { libc } from '@secure-memory/system';

/** Options of the control backend. */
export interface ControlOptions {
  /** Flags to claim without keeping them (a liar, for the testkit's self-tests). */
  claim?: GuaranteeFlag[];
  /** Zero-fill on close (default false: the plaintext stays behind, as in an ordinary Buffer). */
  wipe?: boolean;
  /** Say where each secret's bytes are (through the shared libc binding), so that native probes can aim at them. */
  region?: boolean;
}

/** A factory over ordinary off-heap Buffers: no locking, no protection, no exclusion from dumps. */
export class ControlSecretFactory extends SecretFactoryBase {
  readonly name: string;
  readonly guarantees: Readonly<Guarantees>;
  readonly #wipe: boolean;
  readonly #address: ((bytes: Uint8Array) => bigint) | undefined;

  constructor(options: ControlOptions = {}) {
    super();
    assertOptions(options, 'options');
    const claim = options.claim ?? [];
    if (!Array.isArray(claim) || !claim.every(isGuaranteeFlag)) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, 'The "claim" option must be an array of guarantee flags');
    }
    for (const key of ['wipe', 'region'] as const) {
      if (options[key] !== undefined && typeof options[key] !== 'boolean') {
        throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${key}" option must be a boolean`);
      }
    }
    this.#wipe = options.wipe ?? false;
    this.#address = options.region === true ? libc('testkit').address : undefined;
    this.name = claim.length > 0 ? 'liar' : 'control';
    this.guarantees = defineGuarantees(Object.fromEntries(claim.map((f) => [f, true])));
  }

  protected allocate(size: number, fill: RegionFill): SecretRegion {
    // An ArrayBuffer's backing store is off the V8 heap, never moved by the garbage collector.
    const bytes = new Uint8Array(new ArrayBuffer(size));
    fill(bytes);
    const wipe = this.#wipe;
    const address = this.#address;
    return {
      ...(address === undefined ? {} : { location: () => ({ address: address(bytes), size }) }),
      protectRead: () => bytes,
      protectIdle: () => {},
      wipe: () => {
        if (wipe) bytes.fill(0);
      },
      free: () => {},
    };
  }

  protected backendStats(): BackendStats {
    return { lockedBytes: 0 };
  }
}

/** Makes the control backend's factory. */
export function createFactory(options?: ControlOptions): ControlSecretFactory {
  return new ControlSecretFactory(options);
}
