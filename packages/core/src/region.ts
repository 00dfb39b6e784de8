/**
 * The contract between core and a backend for one secret's memory: what a backend supplies
 * ({@link SecretRegion}), called by {@link ManagedSecret} (secret.ts) and released by lifetime.ts.
 * @module
 */
import type { RegionLocation } from './types.js';

/**
 * The operations a backend supplies for one secret's memory. The region is idle (protected) when
 * handed to {@link ManagedSecret}; core calls `protectRead` when the first access opens,
 * `protectIdle` when the last one ends, and `wipe` then `free` exactly once at close, never
 * during an access.
 */
export interface SecretRegion {
  /** Makes the bytes readable and returns a view of exactly the secret's size. */
  protectRead(): Uint8Array;
  /** Protects the bytes again; `view` is the one `protectRead` returned (revoke it if you can). */
  protectIdle(view: Uint8Array): void;
  /** Overwrites the bytes with zeros. */
  wipe(): void;
  /** Releases the memory. May throw `ERR_INTEGRITY` after releasing when a canary was damaged. */
  free(): void;
  /** Where the data is, for native probes; omit when it cannot be said honestly. */
  location?(): RegionLocation;
  /**
   * A fresh view of the bytes (readable only while an access is open) on an ArrayBuffer object of
   * its own, external, over the same memory: core hands it to actions instead of the region's own
   * view, so that nothing a caller does to it (a transfer) can empty the view of later accesses.
   * A region that has it must also have {@link SecretRegion.retire}.
   */
  exposeView?(): Uint8Array;
  /**
   * Called (after `wipe`) instead of `free` while a view handed to an action may still be
   * reachable: makes the memory inaccessible and gives back its lock and its pages, but keeps its
   * addresses reserved, so that no other secret can ever be placed where a kept view points.
   * Core calls `free` once every such view is garbage-collected, or never when one of them was
   * detached (its memory moved to an ArrayBuffer core cannot see). May throw `ERR_INTEGRITY`
   * after doing its work, as `free` may.
   *
   * A region that has it is also released by core when its secret is garbage-collected without
   * `close()` (with a warning), and when the worker thread that made it ends by `process.exit()` or
   * a normal end; it must then hold no reference to its secret. A region without it releases
   * itself (as memguard's do).
   */
  retire?(): void;
}
