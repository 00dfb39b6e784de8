/** Key states and small scratch buffers take slots of a locked pool: closed ones are wiped and reused. */
import { readStatusBytes } from '@secure-memory/core/backend';
import { createFactory } from '@secure-memory/protected-memory';
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { aead, hkdf } from '../src/index.ts';
import { scanForKey, withHolder } from './holder.ts';

const CHILD = fileURLToPath(new URL('fixtures/close-child.mjs', import.meta.url));

describe('the slot pool', () => {
  it('reuses the slots of closed aeads and unwrap scratch: locked memory does not grow over rounds', () => {
    const factory = createFactory();
    using key = factory.createRandom(32);
    using wrapper = aead('xchacha20-poly1305', key);
    const wrapped = wrapper.wrap(key);
    const round = () => {
      const open = Array.from({ length: 100 }, (_, i) => aead(i % 2 === 0 ? 'aes-256-gcm' : 'chacha20-poly1305', key));
      for (const cipher of open) cipher.close();
      for (let i = 0; i < 20; i += 1) wrapper.unwrap(wrapped, factory).close();
      hkdf('sha256', key, { length: 64 }, factory).close();
      return readStatusBytes('VmLck');
    };
    const first = round();
    expect(first).toBeGreaterThan(0);
    for (let i = 0; i < 5; i += 1) expect(round()).toBe(first);
  });

  it('close wipes the key state: once the aead and its key Secret are closed, an outside scan finds no window of the key anywhere', async () => {
    for (const mode of ['closed', 'open'] as const) {
      const hits = await withHolder([CHILD, mode], ({ pid, keyBytes }) => scanForKey(pid, keyBytes));
      // The control keeps the aead open: its slot holds the key, and the scan sees it there.
      if (mode === 'closed') expect([...hits.protected, ...hits.unprotected]).toEqual([]);
      else expect(hits.protected.length).toBeGreaterThanOrEqual(1);
    }
  }, 900_000);
});
