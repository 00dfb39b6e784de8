/**
 * `@secure-memory/memguard`: memguard's design for Node.js through a node-addon-api addon: guarded,
 * locked buffers with a canary, views that fault once their memory is released (never an empty key), Enclaves
 * and Streams encrypted at rest under a process key that no partial read-out recovers, a pool that
 * makes opening cheap, purge and signal handling, and a `SecretFactory` for the secure-memory
 * contract (encrypted at rest by default). Nothing happens at import: the addon is loaded on first
 * use, the exit hook is installed by the first buffer or key, the process key is made by the first
 * Enclave, and core dumps stay enabled unless you call `disableCoreDumps()`.
 * @module
 */
export { MemguardSecretFactory, createFactory, type MemguardMode, type MemguardOptions, type MemguardStats } from './factory.js';
export { LockedBuffer, lockedBufferStats, type TypedView, type TypedViewConstructor } from './buffer.js';
export { newBuffer, newBufferFromBytes, newBufferRandom, scrambleBytes, wipeBytes } from './buffer-new.js';
export { newBufferFromFd, newBufferFromFdToEnd, newBufferFromFdUntil, newBufferFromStream } from './buffer-read.js';
export type { LockedBufferOptions, ReadOptions } from './options.js';
export { catchInterrupt, catchSignal, disableCoreDumps, purge, safeExit, safePanic, type SignalHandler } from './process.js';
export { Enclave, newEnclave, newEnclaveRandom, seal } from './enclave.js';
export { STREAM_CHUNK_SIZE, Stream } from './stream.js';
export { REKEY_INTERVAL_MS, keyInfo, type KeyInfo, type KeyStorage } from './key.js';
export { POOL_MAX_BYTES, POOL_MAX_PER_CLASS, poolStats, type PoolStats } from './pool.js';
export { INTEGRITY_WARNING, UNRELEASED_WARNING, WARNING_TYPE } from './lifetime.js';

// createSecretFactory({ backend: 'memguard', options }) checks `options` against this package's type.
declare module '@secure-memory/core' {
  interface BackendOptionsByName {
    memguard: import('./factory.js').MemguardOptions;
  }
}
