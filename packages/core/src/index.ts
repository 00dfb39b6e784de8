/**
 * `@secure-memory/core`: the contract every secure-memory backend satisfies, its errors, the
 * guarantee manifest, the shared access logic, and backend selection. No native code.
 * @module
 */
export * from './errors.js';
export * from './assert.js';
export * from './bytes.js';
export * from './guarantees.js';
export * from './types.js';
export { Redacted } from './redacted.js';
export { ManagedSecret, constantTimeEqual, type SecretRegion } from './secret.js';
export { SecretFactoryBase, type RegionFill } from './factory.js';
export * from './select.js';
export * from './registry.js';
export * from './limits.js';
