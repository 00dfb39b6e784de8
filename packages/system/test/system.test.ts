// The shared system layer: each libc wrapper returns the C result and captures errno at once on a
// failure; the smaps reader finds a mapping as the kernel reports it.
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE, findMapping, libc, readMappings } from '../src/index.ts';

const EINVAL = 22;

describe('libc', () => {
  it('maps, protects and unmaps, and the smaps reader sees each protection', () => {
    const lib = libc();
    const address = lib.mmap(lib.pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    expect(address).not.toBe(lib.mapFailed);
    expect(address % BigInt(lib.pageSize)).toBe(0n);
    lib.poke(address, 0xa5);
    expect(lib.peek(address)).toBe(0xa5);
    expect(lib.view(address, 1)[0]).toBe(0xa5);
    expect(findMapping(readMappings('self'), address)?.perms).toBe('rw-p');
    expect(lib.mprotect(address, lib.pageSize, PROT_NONE)).toBe(0);
    expect(findMapping(readMappings('self'), address)?.perms).toBe('---p');
    expect(lib.munmap(address, lib.pageSize)).toBe(0);
    expect(findMapping(readMappings('self'), address)).toBeUndefined();
  });

  it('returns -1 and captures errno on a failed call, and keeps it past later successful calls', () => {
    const lib = libc();
    expect(lib.munmap(1n, lib.pageSize)).toBe(-1); // not page-aligned
    expect(lib.errno()).toBe(EINVAL);
    expect(lib.gettid()).toBeGreaterThan(0);
    expect(lib.errno()).toBe(EINVAL);
  });

  it('gives the address of a typed array', () => {
    const lib = libc();
    const bytes = new Uint8Array(128).fill(7);
    const address = lib.address(bytes);
    expect(lib.peek(address + 127n)).toBe(7);
  });

  it('is one binding, loaded once', () => {
    expect(libc('a')).toBe(libc('b'));
  });
});
