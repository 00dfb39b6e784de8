/**
 * The one registry of the backends this project publishes. Everything that names a backend derives
 * from it: short names for `createSecretFactory`, the order `"auto"` tries them in, and the modes the
 * `secure-memory` command's matrix, bench and soak run. Adding a backend is one entry here.
 * @module
 */
import type { GuaranteeFlag } from './guarantees.js';

/** One configuration of a backend that the command's matrix, bench and soak run. */
export interface BackendMode {
  /** The column's name, such as `"memguard (locked)"`. */
  readonly label: string;
  /** Passed to the backend's `createFactory(options)`; absent for its defaults. */
  readonly options?: Readonly<Record<string, unknown>>;
}

/** A backend this project publishes. */
export interface BackendInfo {
  /** The short name `createSecretFactory({ backend })` and `SECURE_MEMORY_BACKEND` take. */
  readonly name: string;
  /** The package `import()` loads. */
  readonly module: string;
  /**
   * Every flag the backend can claim on Linux, with any options (the union of its manifests).
   * `"auto"` ranks backends by how many these are before it loads any; a test checks that no
   * manifest the backend returns claims a flag outside this list.
   */
  readonly claims: readonly GuaranteeFlag[];
  /** The configurations the command's matrix, bench and soak run, in order. */
  readonly modes: readonly BackendMode[];
}

const freeze = (info: BackendInfo): BackendInfo =>
  Object.freeze({ ...info, claims: Object.freeze([...info.claims]), modes: Object.freeze(info.modes.map((m) => Object.freeze({ ...m }))) });

/** The backends this project publishes, in the order the command shows them. */
export const BACKENDS: readonly BackendInfo[] = Object.freeze([
  freeze({
    name: 'protected-memory',
    module: '@secure-memory/protected-memory',
    claims: ['wipesOnClose', 'lockedInRam', 'excludedFromCoreDumps', 'noAccessWhenIdle', 'canary', 'notInheritedByFork', 'hiddenFromKernel', 'constantTimeEquals'],
    modes: [
      { label: 'protected-memory', options: { secretMemory: 'off' } },
      { label: 'protected-memory (secret)', options: { secretMemory: 'require' } },
      { label: 'protected-memory (slab)', options: { secretMemory: 'off', packing: 'slab' } },
    ],
  }),
  freeze({
    name: 'memguard',
    module: '@secure-memory/memguard',
    claims: ['wipesOnClose', 'lockedInRam', 'excludedFromCoreDumps', 'noAccessWhenIdle', 'guardPages', 'canary', 'encryptedAtRest', 'notInheritedByFork', 'constantTimeEquals'],
    modes: [
      { label: 'memguard (locked)', options: { mode: 'locked' } },
      { label: 'memguard (enclave)', options: { mode: 'enclave' } },
    ],
  }),
  freeze({
    name: 'sodium',
    module: '@secure-memory/sodium',
    claims: ['wipesOnClose', 'lockedInRam', 'excludedFromCoreDumps', 'noAccessWhenIdle', 'guardPages', 'canary', 'constantTimeEquals'],
    modes: [{ label: 'sodium' }],
  }),
]);

/** The backends by short name: the package each one loads. Derived from {@link BACKENDS}. */
export const KNOWN_BACKENDS: Readonly<Record<string, string>> = Object.freeze(Object.fromEntries(BACKENDS.map((b) => [b.name, b.module])));

