/**
 * The short-lived fault-probe children (see `child.ts`): a view kept past its action, one kept
 * past `close()`, one moved out with `transfer()`, a touch one byte past the end or into the page
 * before the data, and a write just before the data (the canary). Each reports what it saw as
 * events; the parent also watches how it ends (a fault kills it).
 * @module
 */
import { createHash } from 'node:crypto';
import type { SecretFactory } from '@secure-memory/core';
import { locate, source } from './child-io.js';
import { sendEvent as send } from './events.js';

/**
 * A view kept past close() must never read another secret: the secret is closed, then new ones
 * (which a pooling allocator places where it was) are read while the kept view is compared with them.
 */
export function keepAfterClose(factory: SecretFactory): void {
  const first = factory.createRandom(32);
  let kept: Uint8Array = new Uint8Array(0);
  first.withBytes((view) => {
    kept = view;
  });
  first.close();
  send({ event: 'kept', byteLength: kept.byteLength });
  let readOther = false;
  let tries = 0;
  for (let i = 0; i < 16 && !readOther; i += 1) {
    const other = i % 2 === 0 ? factory.createRandom(32) : factory.new(source('off-heap', 32));
    other.withBytes((view) => {
      tries += 1;
      if (kept.byteLength !== view.byteLength) return;
      let same = true;
      for (let j = 0; j < view.byteLength; j += 1) if (kept[j] !== view[j]) same = false;
      readOther = same;
    });
    other.close();
  }
  send({ event: 'result', readOther, tries });
}

/** A view moved out of its access with ArrayBuffer.prototype.transfer() (Node 22+) must not outlive the access. */
export function transfer(factory: SecretFactory): void {
  if (typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer !== 'function') {
    send({ event: 'unsupported', node: process.version });
    return;
  }
  const secret = factory.createRandom(32);
  let moved: ArrayBuffer | undefined;
  let digest = '';
  let own: Buffer | undefined;
  try {
    secret.withBytes((view) => {
      digest = createHash('sha256').update(view).digest('hex');
      // A copy kept to look for the secret inside a larger moved buffer (a slab); this child is not scanned.
      own = Buffer.from(view);
      try {
        moved = (view.buffer as ArrayBuffer & { transfer(): ArrayBuffer }).transfer();
        send({ event: 'transferred', byteLength: moved.byteLength });
      } catch (error) {
        send({ event: 'refused', name: (error as Error).name, code: (error as { code?: unknown }).code ?? null });
      }
    });
  } catch (error) {
    // The library noticed the transfer when the access ended: a loud failure, as it should be.
    send({ event: 'access-error', code: (error as { code?: unknown }).code ?? null });
  }
  send({ event: 'access-ended' });
  if (moved !== undefined) {
    const view = new Uint8Array(moved);
    const readable = view.byteLength > 0;
    const whole = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    const found = (readable && createHash('sha256').update(view).digest('hex') === digest) || (own !== undefined && whole.indexOf(own) !== -1);
    send({ event: 'read', byteLength: view.byteLength, secret: found, zeros: readable && view.every((b) => b === 0) });
  }
  try {
    secret.close();
    send({ event: 'closed' });
  } catch (error) {
    send({ event: 'close-error', code: (error as { code?: unknown }).code ?? null });
  }
}

export function keepView(factory: SecretFactory): void {
  const secret = factory.createRandom(32);
  let kept: Uint8Array = new Uint8Array(0);
  secret.withBytes((view) => {
    kept = view;
  });
  send({ event: 'kept', byteLength: kept.byteLength });
  if (kept.byteLength === 0) return;
  let mix = 0;
  for (let i = 0; i < kept.byteLength; i += 1) mix ^= kept[i] as number;
  send({ event: 'read', impossible: mix === 256 });
}

export async function touch(factory: SecretFactory, mode: 'guard-after' | 'guard-before' | 'canary'): Promise<void> {
  const native = await import('./native.js');
  const secret = factory.createRandom(32);
  const location = locate(secret);
  if (location === undefined) {
    send({ event: 'no-region' });
    return;
  }
  if (mode === 'canary') {
    const target = location.address - 1n;
    const written = secret.withBytes(() => {
      const errno = native.protectPage(target, native.PROT_READ | native.PROT_WRITE);
      if (errno !== 0) return `mprotect failed with errno ${errno}`;
      native.poke(target, native.peek(target) ^ 0xff);
      return undefined;
    });
    if (written !== undefined) {
      send({ event: 'cannot-write', reason: written });
      return;
    }
    send({ event: 'written' });
    try {
      secret.close();
      send({ event: 'closed-clean' });
    } catch (error) {
      send({ event: 'close-error', code: (error as { code?: unknown }).code ?? null });
    }
    return;
  }
  const target =
    mode === 'guard-after'
      ? location.address + BigInt(location.size)
      : location.address - (location.address % native.pageSize) - 1n;
  secret.withBytes(() => {
    send({ event: 'touching', address: target });
    native.peek(target);
  });
  send({ event: 'survived' });
}

