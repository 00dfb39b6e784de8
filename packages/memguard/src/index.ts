/**
 * `@secure-memory/memguard`: memguard's design for Node.js through a node-addon-api addon: guarded,
 * locked buffers with a canary, views that are revoked (detached) rather than crashed on, purge and
 * signal handling, and a `SecretFactory` for the secure-memory contract. Nothing happens at import:
 * the addon is loaded on first use, the exit hook is installed by the first buffer, and core dumps
 * stay enabled unless you call `disableCoreDumps()`.
 * @module
 */
export { MemguardSecretFactory, createFactory, type MemguardMode, type MemguardOptions, type MemguardStats } from './factory.js';
export {
  LockedBuffer,
  lockedBufferStats,
  newBuffer,
  newBufferFromBytes,
  newBufferFromFd,
  newBufferFromFdUntil,
  newBufferRandom,
  type LockedBufferOptions,
} from './buffer.js';
export { catchInterrupt, catchSignal, disableCoreDumps, purge, safeExit, safePanic, type SignalHandler } from './process.js';
export { floorGuardedAllocNs, floorMprotectPairNs } from './floor.js';
export { INTEGRITY_WARNING, UNRELEASED_WARNING, WARNING_TYPE } from './lifetime.js';
