/**
 * `@secure-memory/protected-memory`: Asherah's protected memory (mmap, mlock, mprotect, madvise),
 * with a memfd_secret mode and optional slab packing, through koffi. Nothing happens at import:
 * libc is bound on first use.
 * @module
 */
export {
  ProtectedMemorySecretFactory,
  createFactory,
  type LockOption,
  type PackingOption,
  type ProtectedMemoryMode,
  type ProtectedMemoryOptions,
  type SecretMemoryOption,
} from './factory.js';
export { hardenProcess, type HardenProcessOptions } from './harden.js';
export { secretMemoryAvailable } from './secret-memory.js';
export type { MappingStats } from './region.js';
export { CANARY_BYTES, MAX_SLAB_BYTES, SIZE_CLASSES, SLOT_STRIDES, type SlabStats } from './slab.js';

// createSecretFactory({ backend: 'protected-memory', options }) checks `options` against this package's type.
declare module '@secure-memory/core' {
  interface BackendOptionsByName {
    'protected-memory': import('./factory.js').ProtectedMemoryOptions;
  }
}
