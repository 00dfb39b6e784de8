import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countInFile, findMapping, readMappings, scanMemory, tryReadRegion } from '@secure-memory/testkit';

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
