import { describe, expect, it } from 'vitest';
import { ManagedSecret, type SecretRegion } from '@secure-memory/core/backend';

/** A region that records what core asks of it. */
function recordingRegion(size = 4, options: { integrityFailure?: boolean } = {}) {
  const calls: string[] = [];
  const bytes = new Uint8Array(size).fill(9);
  const region: SecretRegion = {
    protectRead: () => {
      calls.push('read');
      return bytes;
    },
    protectIdle: (view) => {
      calls.push(view === bytes ? 'idle' : 'idle(wrong view)');
    },
    wipe: () => {
      calls.push('wipe');
      bytes.fill(0);
    },
    free: () => {
      calls.push('free');
      if (options.integrityFailure) throw Object.assign(new Error('canary'), { code: 'ERR_INTEGRITY' });
    },
    location: () => ({ address: 0x1000n, size }),
  };
  let freed = 0;
  const secret = new ManagedSecret('test', region, size, () => {
    freed += 1;
  });
  return { secret, calls, bytes, freed: () => freed };
}

describe('ManagedSecret access counting', () => {
  it('opens on the first access and protects after the last, nested', () => {
    const { secret, calls } = recordingRegion();
    secret.withBytes(() => secret.withBytes(() => secret.withBytes(() => undefined)));
    expect(calls).toEqual(['read', 'idle']);
  });

  it('protects again when the action throws', () => {
    const { secret, calls } = recordingRegion();
    expect(() =>
      secret.withBytes(() => {
        throw new Error('x');
      }),
    ).toThrow('x');
    expect(calls).toEqual(['read', 'idle']);
  });

  it('keeps one opening across overlapping async accesses', async () => {
    const { secret, calls } = recordingRegion();
    let releaseA!: () => void;
    const a = secret.withBytesAsync(() => new Promise<void>((r) => (releaseA = r)));
    const b = secret.withBytesAsync(async () => 'b');
    expect(await b).toBe('b');
    expect(calls).toEqual(['read']);
    releaseA();
    await a;
    expect(calls).toEqual(['read', 'idle']);
  });

  it('wipes then frees once, and only after the last access, when closed during it', async () => {
    const { secret, calls, freed } = recordingRegion();
    let release!: () => void;
    const pending = secret.withBytesAsync(() => new Promise<void>((r) => (release = r)));
    secret.close();
    secret.close();
    expect(secret.closed).toBe(true);
    expect(calls).toEqual(['read']);
    release();
    await pending;
    expect(calls).toEqual(['read', 'idle', 'wipe', 'free']);
    expect(freed()).toBe(1);
  });

  it('never calls the region after close and counts the free even when free throws', () => {
    const { secret, calls, freed } = recordingRegion(4, { integrityFailure: true });
    expect(() => secret.close()).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
    expect(freed()).toBe(1);
    expect(() => secret.close()).not.toThrow();
    expect(() => secret.withBytes(() => 0)).toThrow(expect.objectContaining({ code: 'ERR_SECRET_CLOSED' }));
    expect(calls).toEqual(['wipe', 'free']);
  });

  it('refuses an async action before opening the region', () => {
    const { secret, calls } = recordingRegion();
    // @ts-expect-error the types refuse an async action too
    expect(() => secret.withBytes(async () => 1)).toThrow(expect.objectContaining({ code: 'ERR_ASYNC_ACTION' }));
    expect(calls).toEqual([]);
  });

  it('exposes the region location through the probe symbol', () => {
    const { secret } = recordingRegion(8);
    const probe = (secret as unknown as Record<symbol, () => unknown>)[Symbol.for('secure-memory.region')];
    expect(probe?.call(secret)).toEqual({ address: 0x1000n, size: 8 });
  });

  it('shows only a redacted form', () => {
    const { secret } = recordingRegion(8);
    expect(String(secret)).toBe('Secret(test, 8 bytes)');
    expect(JSON.stringify({ secret })).toBe('{"secret":"Secret(test, 8 bytes)"}');
    secret.close();
    expect(`${secret}`).toBe('Secret(test, closed)');
  });
});

describe('ManagedSecret when protecting again fails', () => {
  it("surfaces the protect error with the action's error as its cause, and the next access works", async () => {
    const failure = Object.assign(new Error('mprotect'), { code: 'ERR_PROTECTION_FAILED' });
    const bytes = new Uint8Array(4);
    let failOnce = true;
    const flaky = new ManagedSecret('test', {
      protectRead: () => bytes,
      protectIdle: () => {
        if (failOnce) {
          failOnce = false;
          throw failure;
        }
      },
      wipe: () => bytes.fill(0),
      free: () => {},
    }, 4);
    const actionError = new Error('action');
    let thrown: unknown;
    try {
      flaky.withBytes(() => {
        throw actionError;
      });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBe(failure);
    expect((thrown as Error).cause).toBe(actionError);
    await expect(flaky.withBytesAsync(() => 1)).resolves.toBe(1);
    flaky.close();
  });
});

describe('an action that hands the view to asynchronous code', () => {
  it('returning a Promise: ERR_ASYNC_ACTION, and the access stays open until the promise settles', async () => {
    const { secret, calls } = recordingRegion();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // @ts-expect-error the types refuse a promise result too
    expect(() => secret.withBytes(() => gate)).toThrow(expect.objectContaining({ code: 'ERR_ASYNC_ACTION' }));
    expect(calls).toEqual(['read']);
    secret.close(); // refused for new access at once, freed when the promise settles
    expect(calls).toEqual(['read']);
    release();
    await gate;
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual(['read', 'idle', 'wipe', 'free']);
  });

  it('returning another thenable: ERR_ASYNC_ACTION, its then is never called, and the access ends at once', () => {
    const { secret, calls } = recordingRegion();
    let called = false;
    expect(() =>
      secret.withBytes(() => ({
        then() {
          called = true;
        },
      })),
    ).toThrow(expect.objectContaining({ code: 'ERR_ASYNC_ACTION' }));
    expect(calls).toEqual(['read', 'idle']);
    expect(called).toBe(false);
  });
});
