/**
 * `@secure-memory/protected-memory`: Asherah's protected memory (mmap, mlock, mprotect, madvise),
 * with a memfd_secret mode, through koffi. Nothing happens at import: libc is bound on first use.
 * @module
 */
export {
  ProtectedMemorySecretFactory,
  createFactory,
  type LockOption,
  type ProtectedMemoryMode,
  type ProtectedMemoryOptions,
  type SecretMemoryOption,
} from './factory.js';
export { hardenProcess, type HardenProcessOptions } from './harden.js';
export { secretMemoryAvailable } from './secret-memory.js';
export type { MappingStats } from './region.js';
