/**
 * `@secure-memory/core/backend`: what a backend author needs to write a backend and what the
 * testkit needs to prove one: `SecretFactoryBase` and `ManagedSecret` (the access rules, written
 * once), the ingestion path and byte helpers, argument checks, error helpers, the manifest builder,
 * process limits (`MapBudget`, `/proc` readers), the region probe, and backend loading checks. The
 * application's side (`createSecretFactory`, `Secret`, errors, guarantees) is at the package root.
 * @module
 */
export { secretClosed } from './errors.js';
export {
  type ChoiceSpec,
  LOCK_CHOICES,
  type LockOption,
  MAX_SECRET_SIZE,
  assertFd,
  assertFunction,
  assertOneOf,
  assertOptions,
  assertSize,
  describeType,
  invalidThis,
  readChoiceOptions,
} from './assert.js';
export {
  MAX_ON_HEAP_BYTES,
  assertBytes,
  byteLengthOf,
  copyBytes,
  handOutView,
  ingestBytes,
  isEmptied,
  isProtectedView,
  isUint8Array,
  markProtectedView,
  notePossiblyProtected,
  wipeBytes,
  type IngestPlace,
} from './bytes.js';
export { defineGuarantees, isGuaranteeFlag } from './guarantees.js';
export { REGION_PROBE, type BackendModule, type RegionLocation } from './types.js';
export { Redacted } from './redacted.js';
export { ManagedSecret, constantTimeEqual } from './secret.js';
export type { SecretRegion } from './region.js';
export { SecretFactoryBase, type RegionFill } from './factory.js';
export { assertSecretFactory, probeFactory, resolveBackendSpecifier } from './select.js';
export {
  MAP_BUDGET_CONCURRENCY,
  MapBudget,
  mapLimitError,
  mapReserve,
  memlockLimitError,
  readMapCount,
  readMaxMapCount,
  readMemlockLimit,
  readResourceLimit,
  readStatusBytes,
  systemError,
  type ResourceLimit,
} from './limits.js';
