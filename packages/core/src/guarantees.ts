/**
 * The guarantee manifest: what a backend claims to keep. Every flag defaults to `false`; a
 * backend claims only what it keeps on the platform it runs on, with the options in force.
 * @module
 */
import { describeType } from './assert.js';
import { ErrorCode, SecureMemoryTypeError } from './errors.js';

/** Every guarantee flag, in the order reports list them. */
export const GUARANTEE_FLAGS = [
  'wipesOnClose',
  'lockedInRam',
  'excludedFromCoreDumps',
  'noAccessWhenIdle',
  'viewsRevoked',
  'guardPages',
  'canary',
  'encryptedAtRest',
  'notInheritedByFork',
  'hiddenFromKernel',
  'constantTimeEquals',
] as const;

/** One guarantee flag. */
export type GuaranteeFlag = (typeof GUARANTEE_FLAGS)[number];

/** A complete manifest: one boolean per flag. */
export type Guarantees = Record<GuaranteeFlag, boolean>;

/** What each flag means, in one line. */
export const GUARANTEE_DESCRIPTIONS: Readonly<Record<GuaranteeFlag, string>> = Object.freeze({
  wipesOnClose: 'after close no copy of the plaintext remains in the process',
  lockedInRam: 'the plaintext is never swapped out (mlock or secret memory)',
  excludedFromCoreDumps: 'the plaintext is never in a core dump (per region, no global side effect)',
  noAccessWhenIdle: 'the region is inaccessible (PROT_NONE) outside an access',
  viewsRevoked: 'views kept past their action are detached',
  guardPages: 'native accesses just past either end of the data fault',
  canary: 'an underflow write before the data is detected on close',
  encryptedAtRest: 'the plaintext exists only during an access',
  notInheritedByFork: 'a forked child does not receive the bytes',
  hiddenFromKernel: 'other processes, ptrace and /proc/pid/mem cannot read the bytes (memfd_secret)',
  constantTimeEquals: 'equals does not exit early',
});

/** True when `value` names a guarantee flag. */
export function isGuaranteeFlag(value: unknown): value is GuaranteeFlag {
  return typeof value === 'string' && (GUARANTEE_FLAGS as readonly string[]).includes(value);
}

/**
 * Builds a frozen, complete manifest from the flags a backend claims; the rest are `false`.
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an unknown flag, `ERR_INVALID_ARG_TYPE` for a non-boolean value.
 * @example
 * ```ts
 * const guarantees = defineGuarantees({ wipesOnClose: true, lockedInRam: true });
 * guarantees.canary; // false
 * ```
 */
export function defineGuarantees(claims: Partial<Guarantees> = {}): Readonly<Guarantees> {
  const manifest = Object.fromEntries(GUARANTEE_FLAGS.map((flag) => [flag, false])) as Guarantees;
  for (const [flag, value] of Object.entries(claims)) {
    if (!isGuaranteeFlag(flag)) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `Unknown guarantee flag "${flag}"`);
    }
    if (typeof value !== 'boolean') {
      throw new SecureMemoryTypeError(
        ErrorCode.INVALID_ARG_TYPE,
        `The guarantee "${flag}" must be a boolean. Received ${describeType(value)}`,
      );
    }
    manifest[flag] = value;
  }
  return Object.freeze(manifest);
}

/** The flags a manifest claims. */
export function claimedFlags(guarantees: Readonly<Guarantees>): GuaranteeFlag[] {
  return GUARANTEE_FLAGS.filter((flag) => guarantees[flag] === true);
}
