/**
 * The open secrets of this thread (of every factory), so that a purge, which destroys their memory,
 * can close them too: their `closed` becomes true, as memguard's IsClosed().
 * @module
 */
import type { Secret } from '@secure-memory/core';
import { arenaSecrets } from './box-arena.js';

/**
 * Every locked-mode secret of every factory of this thread that is not closed yet (enclave-mode
 * secrets are found through their slots, box-arena.ts), for {@link closeAllSecrets}:
 * a purge destroys their memory, and closing them makes `closed` true (as memguard's IsClosed()).
 */
const openSecrets = new Set<WeakRef<Secret>>();
let pruneAt = 1024;

/** Lists `secret` (weakly) until {@link forget}; the region keeps the reference it returns. */
export function remember(secret: Secret): WeakRef<Secret> {
  const ref = new WeakRef(secret);
  openSecrets.add(ref);
  if (openSecrets.size >= pruneAt) {
    for (const r of openSecrets) if (r.deref() === undefined) openSecrets.delete(r);
    pruneAt = Math.max(1024, openSecrets.size * 2);
  }
  return ref;
}

/** Takes a closed secret off the list, by the reference {@link remember} returned. */
export function forget(ref: WeakRef<Secret> | undefined): void {
  if (ref !== undefined) openSecrets.delete(ref);
}

/**
 * Closes every open secret of this thread (after a purge destroyed their memory): their `closed`
 * becomes true; one in an access is closed when the access ends. Errors are collected, not thrown.
 */
export function closeAllSecrets(): unknown[] {
  const errors: unknown[] = [];
  const close = (secret: Secret | undefined): void => {
    try {
      secret?.close();
    } catch (error) {
      errors.push(error);
    }
  };
  for (const ref of [...openSecrets]) {
    openSecrets.delete(ref);
    close(ref.deref());
  }
  // Enclave-mode secrets are held (weakly) by the slots of their sealed boxes, not listed here.
  for (const secret of arenaSecrets()) close(secret);
  return errors;
}
