/**
 * `@secure-memory/sodium`: libsodium's `sodium_malloc` / `sodium_mprotect_*` through sodium-native,
 * with the crashes designed out (mapping budget, checked mlock, canary check at close). Nothing is
 * loaded at import: sodium-native and libc are bound when the first factory is built.
 * @module
 */
export { SodiumSecretFactory, createFactory, type LockOption, type SodiumOptions, type SodiumStats } from './factory.js';
export { MAPPINGS_PER_SECRET } from './native.js';

// createSecretFactory({ backend: 'sodium', options }) checks `options` against this package's type.
declare module '@secure-memory/core' {
  interface BackendOptionsByName {
    sodium: import('./factory.js').SodiumOptions;
  }
}
