/**
 * `@secure-memory/core`: the application's side of the contract every secure-memory backend
 * satisfies: choose a backend (`createSecretFactory`), the `Secret` and `SecretFactory` it gives,
 * the guarantee manifest, the errors and their codes, and the registry of backends. What backend
 * authors need to write one is in `@secure-memory/core/backend`. No native code.
 * @module
 */
export { ErrorCode, SecureMemoryError, SecureMemoryRangeError, SecureMemoryTypeError, isSecureMemoryError, type ErrorCodeValue, type SecureMemoryErrorDetails } from './errors.js';
export { GUARANTEE_DESCRIPTIONS, GUARANTEE_FLAGS, claimedFlags, type GuaranteeFlag, type Guarantees } from './guarantees.js';
export type { BackendStats, FactoryStats, Secret, SecretFactory, SecretReader, SyncResult } from './types.js';
export { BACKEND_ENV, createSecretFactory, loadBackend, type BackendOptionsByName, type BackendOptionsFor, type CreateSecretFactoryOptions } from './select.js';
export { BACKENDS, KNOWN_BACKENDS, type BackendInfo, type BackendMode } from './registry.js';
