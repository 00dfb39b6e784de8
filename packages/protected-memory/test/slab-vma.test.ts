// Slab packing and the kernel's mappings (VMAs): each page of a shared slab is a VMA of its own, so
// that an access (which changes the protection of one page) never splits a slab's VMA in three and
// merges it back, which cost more than the mprotect pair itself (issue #17).
import type { Secret } from '@secure-memory/core';
import { REGION_PROBE } from '@secure-memory/core/backend';
import { afterEach, describe, expect, it } from 'vitest';
import { createFactory } from '../src/index.js';
import { PAGE, mappingAt } from './helpers.js';

const open: Secret[] = [];
afterEach(() => {
  for (const secret of open.splice(0)) secret.close();
});

const locate = (secret: Secret): bigint => (secret[REGION_PROBE as never] as () => { address: bigint }).call(secret).address;
const pageOf = (address: bigint): bigint => address - (address % BigInt(PAGE));

describe('slab pages', () => {
  it.each(['auto', 'off'] as const)('every page of a multi-page slab is a VMA of its own, idle and during an access (secretMemory %s)', (secretMemory) => {
    const factory = createFactory({ packing: 'slab', secretMemory });
    // 32-byte secrets (40-byte slots, 102 a page): the class's first slab is one page, the next two, the next four.
    const slotsPerPage = Math.floor(PAGE / 40);
    for (let i = 0; i < 7 * slotsPerPage; i += 1) open.push(factory.createRandom(32));
    const pages = [...new Set(open.map((s) => pageOf(locate(s))))];
    expect(pages.length).toBe(7);
    const adjacent = pages.filter((page) => pages.includes(page + BigInt(PAGE)));
    expect(adjacent.length).toBeGreaterThan(0); // pages of one slab (or of slabs mapped side by side)
    for (const page of pages) {
      const idle = mappingAt(page);
      expect([idle.start, idle.end, idle.perms.slice(0, 3)]).toEqual([page, page + BigInt(PAGE), '---']);
    }
    const secret = open.find((s) => adjacent.includes(pageOf(locate(s)))) as Secret;
    const page = pageOf(locate(secret));
    secret.withBytes(() => {
      const during = mappingAt(page);
      expect([during.start, during.end, during.perms.slice(0, 3)]).toEqual([page, page + BigInt(PAGE), 'r--']);
      const next = mappingAt(page + BigInt(PAGE));
      expect([next.start, next.end, next.perms.slice(0, 3)]).toEqual([page + BigInt(PAGE), page + BigInt(2 * PAGE), '---']);
    });
  });
});
