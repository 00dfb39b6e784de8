// What the kernel says about each secret's mapping, read from /proc/self (this process holds them).
import { closeSync, openSync, readSync } from 'node:fs';
import type { Secret } from '@secure-memory/core';
import { REGION_PROBE } from '@secure-memory/core/backend';
import { describe, expect, it } from 'vitest';
import { createFactory } from '../src/index.js';
import { mappingAt, unmapped } from './helpers.js';

const locate = (secret: Secret): bigint =>
  (secret[REGION_PROBE as never] as () => { address: bigint }).call(secret).address;

/** Reads `size` bytes at `address` through /proc/self/mem, as a debugger or another process would. */
function readProcMem(address: bigint, size: number): { bytes?: Buffer; code?: string } {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const bytes = Buffer.alloc(size);
    readSync(fd, bytes, 0, size, address);
    return { bytes };
  } catch (error) {
    return { code: (error as { code?: string }).code ?? 'unknown' };
  } finally {
    closeSync(fd);
  }
}

describe("anonymous memory (secretMemory 'off')", () => {
  it('is private, PROT_NONE when idle, PROT_READ during access, locked, not dumped, wiped on fork', () => {
    const factory = createFactory({ secretMemory: 'off' });
    using secret = factory.createRandom(32);
    const address = locate(secret);
    const idle = mappingAt(address);
    expect(idle.perms).toBe('---p');
    expect(idle.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    expect(idle.locked).toBeGreaterThan(0);
    const during = secret.withBytes(() => mappingAt(address));
    expect(during.perms).toBe('r--p');
    expect(during.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    expect(mappingAt(address).perms).toBe('---p');
  });

  it("best-effort lock under root's CAP_IPC_LOCK still locks (lo) when it can", () => {
    using secret = createFactory({ secretMemory: 'off', lock: 'best-effort' }).createRandom(32);
    expect(mappingAt(locate(secret)).flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
  });

  it('is readable through /proc/self/mem during access (the control for hiddenFromKernel)', () => {
    using secret = createFactory({ secretMemory: 'off' }).createRandom(32);
    const address = locate(secret);
    const read = secret.withBytes(() => readProcMem(address, 32));
    expect(read.code).toBeUndefined();
    expect(secret.equals(read.bytes as Buffer)).toBe(true);
    (read.bytes as Buffer).fill(0);
  });

  it('is unmapped after close', () => {
    const secret = createFactory({ secretMemory: 'off' }).createRandom(32);
    const address = locate(secret);
    secret.close();
    expect(unmapped(address)).toBe(true);
  });
});

describe("secret memory (secretMemory 'require')", () => {
  it('is shared secretmem, PROT_NONE when idle, PROT_READ during access, locked, not dumped, not forked', () => {
    const factory = createFactory({ secretMemory: 'require' });
    using secret = factory.createRandom(32);
    const address = locate(secret);
    const idle = mappingAt(address);
    expect(idle.path).toMatch(/^\/secretmem/);
    expect(idle.perms).toBe('---s');
    expect(idle.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'dc']));
    expect(idle.flags).not.toContain('wf');
    const during = secret.withBytes(() => mappingAt(address));
    expect(during.perms).toBe('r--s');
    expect(mappingAt(address).perms).toBe('---s');
  });

  it('cannot be read through /proc/self/mem, even during access', () => {
    using secret = createFactory({ secretMemory: 'require' }).createRandom(32);
    const address = locate(secret);
    const read = secret.withBytes(() => readProcMem(address, 32));
    expect(read.bytes).toBeUndefined();
    expect(read.code).toBe('EIO');
  });

  it('keeps no descriptor open per secret and is unmapped after close', async () => {
    const { readdirSync } = await import('node:fs');
    const factory = createFactory({ secretMemory: 'require' });
    const before = readdirSync('/proc/self/fd').length;
    const secrets = Array.from({ length: 64 }, () => factory.createRandom(16));
    expect(readdirSync('/proc/self/fd').length).toBe(before);
    const addresses = secrets.map(locate);
    for (const secret of secrets) secret.close();
    expect(addresses.every(unmapped)).toBe(true);
  });
});
