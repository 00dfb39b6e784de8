/**
 * The contract between the packages: what every backend's factory and secret provide.
 * @module
 */
import type { Guarantees } from './guarantees.js';

/** The counters a backend keeps itself. */
export interface BackendStats {
  /** Bytes this factory holds locked in RAM now. */
  lockedBytes: number;
  /** Backend-specific counters (mappings, slabs, ...). */
  [counter: string]: number;
}

/** Counters of a factory, after Asherah's metrics. */
export interface FactoryStats extends BackendStats {
  /** Secrets ever made by this factory. */
  allocated: number;
  /** Secrets made and not yet freed. */
  inUse: number;
}

/** Where a secret's bytes are, for native-level probes (guard pages, canary). */
export interface RegionLocation {
  /** The address of the first data byte. */
  address: bigint;
  /** The number of data bytes. */
  size: number;
}

/** The key of the optional region probe: `secret[REGION_PROBE]()` returns a {@link RegionLocation} or `undefined`. */
export const REGION_PROBE: unique symbol = Symbol.for('secure-memory.region') as never;

/** A reader in the style of Go's io.Reader: copies into the caller's buffer and returns 0 at the end. */
export interface SecretReader {
  /** Copies the next bytes into `target`; returns how many, 0 at the end (or when `target` is empty). */
  read(target: Uint8Array): number;
}

/**
 * What `withBytes` takes an action to return: anything but a thenable, so that an async action
 * (`withBytes(async (b) => ...)`) is a compile error as well as `ERR_ASYNC_ACTION`.
 */
export type SyncResult<R> = R extends PromiseLike<unknown> ? never : R;

/** A secret held in protected memory. Its bytes are readable only inside `withBytes*`. */
export interface Secret extends Disposable {
  /** The number of bytes. */
  readonly size: number;
  /** True once `close()` was called (also while a pending access still holds it open). */
  readonly closed: boolean;
  /** Runs `action` with a view of the bytes; the view must not outlive the call. A thenable result is an error. */
  withBytes<R>(action: (bytes: Uint8Array) => SyncResult<R>): R;
  /** Runs `action`; the bytes stay readable until the promise it returns settles. */
  withBytesAsync<R>(action: (bytes: Uint8Array) => R | Promise<R>): Promise<R>;
  /** A reader that copies the bytes into caller-owned buffers. */
  reader(): SecretReader;
  /** Compares in constant time (for equal lengths). */
  equals(other: Uint8Array | Secret): boolean;
  /** Wipes and frees the memory; idempotent. During an access it frees when the last access ends. */
  close(): void;
}

/** Makes secrets. Every backend package exports `createFactory(options?)` that returns one. */
export interface SecretFactory {
  /** The backend's short name: "protected-memory", "memguard", "sodium", ... */
  readonly name: string;
  /** What this backend claims to keep, here and with these options. */
  readonly guarantees: Readonly<Guarantees>;
  /** Copies `source` into protected memory and zero-fills `source` on success. */
  'new'(source: Uint8Array): Secret;
  /** Generates `size` CSPRNG bytes directly into protected memory. */
  createRandom(size: number): Secret;
  /** Reads exactly `size` bytes from a file descriptor straight into protected memory (every backend on `SecretFactoryBase` has it). */
  fromFd?(fd: number, size: number): Secret;
  /** The factory's counters. */
  stats(): FactoryStats;
}

/** The shape of a backend module: what `createSecretFactory` imports by name or specifier. */
export interface BackendModule {
  createFactory(options?: Record<string, unknown>): SecretFactory;
}
