import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlaintextSearch, coreSize, countInFile, findMapping, readMappings, scanMemory, tryReadRegion } from '@secure-memory/testkit';

describe('countInFile', () => {
  it('counts needles that straddle chunk boundaries exactly once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scan-'));
    try {
      const needle = randomBytes(16);
      const filler = Buffer.alloc(100, 0x20);
      // Needles at offsets 0, 92 (straddles 100), 190 and at the very end.
      const file = Buffer.concat([needle, filler.subarray(0, 76), needle, filler.subarray(0, 82), needle, filler, needle]);
      const path = join(dir, 'f');
      writeFileSync(path, file);
      for (const chunk of [7, 16, 17, 100, 1 << 20]) expect(countInFile(path, [needle, randomBytes(16)], chunk)).toEqual([4, 0]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('scanMemory', () => {
  it('finds bytes in a live process, with their mapping, across chunk boundaries', () => {
    const needle = new Uint8Array(new ArrayBuffer(32));
    needle.set(randomBytes(32));
    for (const chunk of [4096, 8 << 20]) {
      const scan = scanMemory(process.pid, [needle], chunk);
      const hits = scan.hits.filter((h) => h.needle === 0);
      expect(hits.length).toBeGreaterThanOrEqual(1);
      expect(hits[0]?.mapping.perms).toMatch(/^rw/);
    }
    needle.fill(0);
  });

  it('maps addresses to mappings and reads them from outside', () => {
    const mappings = readMappings('self');
    const heap = mappings.find((m) => m.path === '[heap]' || m.perms.startsWith('rw'));
    expect(heap).toBeDefined();
    expect(findMapping(mappings, heap!.start)).toBe(heap);
    expect(tryReadRegion(process.pid, heap!.start, 16)).toBeUndefined();
    expect(tryReadRegion(process.pid, 0x10n, 16)).toBe('EIO');
  });
});

describe('PlaintextSearch', () => {
  const plaintext = randomBytes(48);
  // Three 0xff bytes: '////' in base64, '____' in base64url, so that the two cannot be taken for each other.
  plaintext.fill(0xff, 9, 12);
  const place = (parts: [number, Uint8Array][], size = 1 << 16): Uint8Array => {
    const memory = new Uint8Array(new ArrayBuffer(size));
    memory.set(randomBytes(size));
    for (const [at, bytes] of parts) memory.set(bytes, at);
    return memory;
  };
  const elements = (bytes: Uint8Array, kind: 'smi' | 'double'): Buffer => {
    const out = Buffer.alloc(bytes.byteLength * 8);
    for (const [i, b] of bytes.entries()) {
      if (kind === 'smi') out.writeUInt32LE(b, i * 8 + 4);
      else out.writeDoubleLE(b, i * 8);
    }
    return out;
  };

  it('finds every copy of at least 16 bytes, at any offset, once, with its length; not 15 bytes', () => {
    const search = new PlaintextSearch([plaintext]);
    search.feed(place([[101, plaintext], [3001, plaintext.subarray(1, 32)], [5003, plaintext.subarray(20, 36)], [7005, plaintext.subarray(0, 15)]]), 0x10000n);
    expect(search.hits().map((h) => [h.encoding, Number(h.address - 0x10000n), h.bytes])).toEqual([
      ['raw', 101, 48],
      ['raw', 3001, 31],
      ['raw', 5003, 16],
    ]);
  });

  it('finds each encoding a careless backend leaves', () => {
    const p = Buffer.from(plaintext);
    const forms: [string, Uint8Array][] = [
      ['hex', Buffer.from(p.toString('hex'))],
      ['HEX', Buffer.from(p.subarray(5).toString('hex').toUpperCase())],
      ['base64', Buffer.from(p.subarray(1).toString('base64'))],
      ['base64url', Buffer.from(p.subarray(2, 40).toString('base64url'))],
      ['utf16le', Buffer.from(p.toString('latin1'), 'utf16le')],
      ['smi-array', elements(p, 'smi')],
      ['double-array', elements(p.subarray(8), 'double')],
    ];
    for (const [encoding, bytes] of forms) {
      const search = new PlaintextSearch([plaintext]);
      // Element arrays sit 8-byte aligned, as V8 keeps them; strings at any offset.
      search.feed(place([[encoding.endsWith('array') ? 4096 : 4099, bytes]]), 0n);
      expect(search.hits().map((h) => h.encoding), encoding).toEqual([encoding]);
    }
  });

  it('random memory holds no hit', () => {
    const search = new PlaintextSearch([plaintext, randomBytes(3000)]);
    search.feed(place([], 8 << 20), 0n);
    expect(search.hits()).toEqual([]);
  });
});

describe('coreSize', () => {
  it('counts what gcore writes: every mapping not marked dd, resident or not', () => {
    const m = (start: bigint, end: bigint, vmFlags: string[], path = '') => ({ start, end, perms: '---p', path, rss: 0, swap: 0, vmFlags });
    expect(coreSize([m(0x1000n, 0x3000n, ['mr']), m(0x3000n, 0x4000n, ['dd']), m(0x4000n, 0x5000n, [], '[vvar]'), m(0x10000n, 0x10000n + (10n << 30n), ['mr'])])).toBe(0x2000 + 10 * 2 ** 30);
    expect(coreSize(readMappings(process.pid))).toBeGreaterThan(0);
  });
});
