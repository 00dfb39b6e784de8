/**
 * The thin native layer of this backend: the shared libc binding of `@secure-memory/system`, with
 * this backend's name on its errors. It stays a module of its own so that tests replace it
 * (`vi.mock('../src/libc.js')`), as Asherah injects its memcall.Interface.
 * @module
 */
import { type Libc, libc as systemLibc } from '@secure-memory/system';

export * from '@secure-memory/system';

/**
 * The bound libc, loaded on first use and cached.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux (or on an architecture whose
 * constants differ); `ERR_BACKEND_UNAVAILABLE` (with `cause`) when koffi or libc cannot be loaded.
 */
export function libc(): Libc {
  return systemLibc('protected-memory');
}
