/**
 * Keys are read through `reader()` into locked scratch memory, so a Secret hands no view of its
 * memory out to JavaScript: closing a data key after aead, wrap, hmac and hkdf frees its memory at
 * once, instead of keeping it retired until the garbage collector collects a view (which costs a
 * short-lived data key about as much as the rest of an envelope record).
 */
import type { Secret } from '@secure-memory/core';
import { createFactory } from '@secure-memory/protected-memory';
import { describe, expect, it } from 'vitest';
import { aead, hkdf, hmac } from '../src/index.ts';

describe('reading keys', () => {
  it.each([
    ["packing 'page'", { secretMemory: 'off' }, 'retiredMappings'],
    ["packing 'slab'", { packing: 'slab', secretMemory: 'off' }, 'retiredSlots'],
  ] as const)('with protected-memory (%s), a data key closed after aead, wrap, hmac and hkdf is freed at once, not retired', (_name, options, counter) => {
    const factory = createFactory(options);
    using kek = factory.createRandom(32);
    using gcm = aead('aes-256-gcm', kek);
    for (let i = 0; i < 20; i += 1) {
      const dataKey = factory.createRandom(32);
      const dek = aead('chacha20-poly1305', dataKey);
      expect(dek.open(dek.seal(Buffer.from('record')))).toEqual(new Uint8Array(Buffer.from('record')));
      dek.close();
      const wrapped = gcm.wrap(dataKey);
      hmac('sha256', dataKey, Buffer.from('x'));
      hkdf('sha256', dataKey, { length: 32 }, factory).close();
      dataKey.close();
      using again = gcm.unwrap(wrapped, factory);
      expect(again.size).toBe(32);
    }
    const stats = factory.stats() as unknown as Record<string, number>;
    expect(stats[counter]).toBe(0);
    expect(stats.inUse).toBe(1); // the KEK
  });

  it('refuses a Secret whose reader() gives fewer bytes than its size', () => {
    const short = {
      size: 32,
      withBytes: (action: (b: Uint8Array) => unknown) => action(new Uint8Array(32)),
      reader: () => {
        let given = 0;
        return {
          read: (target: Uint8Array) => {
            if (given !== 0) return 0;
            given = Math.min(target.byteLength, 16);
            return given;
          },
        };
      },
    } as unknown as Secret;
    expect(() => aead('xchacha20-poly1305', short)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' }));
    expect(() => hmac('sha256', short, new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  it('reads a Secret that gives its bytes in small pieces', () => {
    const factory = createFactory({ secretMemory: 'off' });
    using key = factory.createRandom(32);
    const inner = key.reader();
    const piecewise = { size: 32, withBytes: key.withBytes.bind(key), reader: () => ({ read: (t: Uint8Array) => inner.read(t.subarray(0, Math.min(t.byteLength, 5))) }) } as unknown as Secret;
    expect(hmac('sha256', piecewise, Buffer.from('m'))).toEqual(hmac('sha256', key, Buffer.from('m')));
  });
});
