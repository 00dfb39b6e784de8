// Enclaves, the process key, the pool and Stream, in process. What needs another process (memory
// scans, the timer not holding the process open, RLIMIT_MEMLOCK) is in children.test.ts.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Enclave,
  POOL_MAX_PER_CLASS,
  STREAM_CHUNK_SIZE,
  Stream,
  keyInfo,
  lockedBufferStats,
  newBuffer,
  newBufferFromBytes,
  newBufferRandom,
  newEnclave,
  newEnclaveRandom,
  poolStats,
  purge,
  seal,
} from '@secure-memory/memguard';
import { testHooks } from '../src/testing.js';
import { PAGE, code, locate, mappingsAt, peekSelf } from './helpers.js';

afterEach(() => {
  purge();
  expect(lockedBufferStats()).toMatchObject({ buffers: 0, lockedBytes: 0 });
});

/** The kernel has memfd_secret (and it is enabled). */
const secretMemory = existsSync('/proc/self/maps') && process.platform === 'linux' && (() => {
  try {
    return readFileSync('/proc/kallsyms', 'utf8').includes(' secretmem_');
  } catch {
    return false;
  }
})();

describe('newEnclave, newEnclaveRandom, seal', () => {
  it('a source of a page or more is sealed straight from where it is (no locked staging copy); smaller ones through the pool', () => {
    for (const size of [4095, 4096, 1 << 20]) {
      const source = Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff);
      const expected = Uint8Array.from(source);
      const before = poolStats();
      const enclave = newEnclave(source);
      const after = poolStats();
      const leases = after.hits + after.misses - (before.hits + before.misses);
      expect(leases, `${size} bytes`).toBe(size < 4096 ? 1 : 0);
      expect(source.every((b) => b === 0), `${size} bytes: the source is zero-filled`).toBe(true);
      const opened = enclave.open();
      try {
        expect(Buffer.from(opened.bytes()).equals(Buffer.from(expected)), `${size} bytes round-trip`).toBe(true);
      } finally {
        opened.destroy();
      }
    }
  });

  it('newEnclave seals a copy, wipes the source, and opens into a frozen LockedBuffer of the same bytes', () => {
    const src = randomBytes(48);
    const expected = Buffer.from(src);
    const enclave = newEnclave(src);
    expect(src.every((b) => b === 0)).toBe(true);
    expect(enclave).toBeInstanceOf(Enclave);
    expect(enclave.size).toBe(48);
    using opened = enclave.open();
    expect(opened.size).toBe(48);
    expect(opened.isMutable).toBe(false);
    expect(opened.equalTo(expected)).toBe(true);
    // Opened again: a second, independent buffer.
    using again = enclave.open();
    expect(again.equalTo(expected)).toBe(true);
    expect(locate(again).address).not.toBe(locate(opened).address);
  });

  it('seal(buffer) seals the buffer and destroys it; newEnclaveRandom makes distinct random secrets', () => {
    const buffer = newBufferRandom(32);
    const copy = Buffer.from(buffer.bytes());
    const view = buffer.bytes();
    const { address } = locate(buffer);
    const enclave = seal(buffer);
    expect(buffer.isAlive).toBe(false);
    expect(view.byteLength).toBe(32);
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    using opened = enclave.open();
    expect(opened.equalTo(copy)).toBe(true);
    const [a, b] = [newEnclaveRandom(32).open(), newEnclaveRandom(32).open()];
    expect(a.equalTo(b.bytes())).toBe(false);
    expect(a.bytes().some((x) => x !== 0)).toBe(true);
    a.destroy();
    b.destroy();
  });

  it('never repeats a nonce: the same plaintext seals to different boxes, counters ascending', () => {
    const boxes = [newEnclave(new Uint8Array(16)), newEnclave(new Uint8Array(16))].map((e) => Buffer.from(testHooks.enclaveBox(e)));
    const [first, second] = boxes as [Buffer, Buffer];
    expect(first.subarray(0, 4)).toEqual(second.subarray(0, 4)); // the key's prefix
    expect(second.readBigUInt64BE(4)).toBe(first.readBigUInt64BE(4) + 1n);
    expect(first.subarray(12).equals(second.subarray(12))).toBe(false);
    expect(first.byteLength).toBe(16 + 28);
  });

  it('refuses bad arguments with typed errors, before sealing anything', () => {
    expect(code(() => newEnclave(new Uint8Array(0)))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newEnclave('key' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => newEnclaveRandom(0))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newEnclaveRandom(2 ** 30 + 1))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newEnclaveRandom('32' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => seal(new Uint8Array(4) as never))).toBe('ERR_INVALID_ARG_TYPE');
    const gone = newBuffer(8);
    gone.destroy();
    expect(code(() => seal(gone))).toBe('ERR_SECRET_CLOSED');
    const frozen = newBufferRandom(8);
    const before = Buffer.from(frozen.bytes());
    expect(code(() => newEnclave(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED'); // read-only: cannot be wiped
    expect(frozen.equalTo(before)).toBe(true);
    expect(code(() => new (Enclave as unknown as new (...a: unknown[]) => unknown)(Symbol('x'), {}))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => Enclave.prototype.open.call({}))).toBe('ERR_INVALID_THIS');
  });

  it('shows a redacted form only', () => {
    const enclave = newEnclave(Buffer.from('correct horse battery staple'));
    for (const form of [String(enclave), `${enclave}`, JSON.stringify(enclave), inspect(enclave)]) {
      expect(form).toContain('Enclave(28 bytes)');
      expect(form).not.toContain('horse');
    }
  });
});

describe('integrity and the process key', () => {
  it('a tampered ciphertext (any byte: nonce, data, tag) gives ERR_INTEGRITY, and leaves no buffer behind', () => {
    const enclave = newEnclave(randomBytes(40));
    const box = testHooks.enclaveBox(enclave);
    for (const at of [0, 11, 12, 30, box.byteLength - 1]) {
      box[at] = (box[at] as number) ^ 0x01;
      expect(code(() => enclave.open())).toBe('ERR_INTEGRITY');
      box[at] = (box[at] as number) ^ 0x01;
    }
    expect(lockedBufferStats().buffers).toBe(0);
    enclave.open().destroy();
  });

  it.skipIf(!secretMemory)('the key state lives in secret memory: locked, not dumped, not inherited by fork, unreadable through /proc', () => {
    newEnclaveRandom(8);
    expect(keyInfo().storage).toBe('secret-memory');
    const maps = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
    const secret = maps.filter((m) => m.includes('/secretmem'));
    expect(secret.length).toBeGreaterThanOrEqual(1);
    const flags = secret[0]?.match(/^VmFlags:(.*)$/m)?.[1]?.trim().split(/\s+/) ?? [];
    expect(flags).toEqual(expect.arrayContaining(['lo', 'dd', 'dc']));
    const start = BigInt(`0x${secret[0]?.split('-')[0]}`);
    expect(() => peekSelf(start)).toThrow(); // EIO: not even the process itself reads it through /proc
  });

  it('where there is no secret memory, the key state is a guarded, locked, undumped, wiped-on-fork mapping, and works the same', () => {
    purge();
    testHooks.setKeyStorage('locked-memory');
    try {
      const expected = randomBytes(32);
      const enclave = newEnclave(Buffer.from(expected));
      expect(keyInfo().storage).toBe('locked-memory');
      expect(readFileSync('/proc/self/maps', 'utf8')).not.toContain('/secretmem');
      using opened = enclave.open();
      expect(opened.equalTo(expected)).toBe(true);
      testHooks.flipPreKeyBit(12345);
      expect(code(() => enclave.open())).toBe('ERR_INTEGRITY');
    } finally {
      testHooks.setKeyStorage('auto');
      purge();
    }
    newEnclaveRandom(1);
    expect(keyInfo().storage).toBe(secretMemory ? 'secret-memory' : 'locked-memory');
  });

  it('a pre-key with one flipped bit (a read-out with a single error) opens nothing; flipped back, everything opens', () => {
    const expected = randomBytes(32);
    const enclave = newEnclave(Buffer.from(expected));
    for (const bit of [0, 7, 8 * 8191 + 3, 16384 * 8 - 1]) {
      testHooks.flipPreKeyBit(bit);
      expect(code(() => enclave.open())).toBe('ERR_INTEGRITY');
      testHooks.flipPreKeyBit(bit);
      using opened = enclave.open();
      expect(opened.equalTo(expected)).toBe(true);
    }
    expect(code(() => testHooks.flipPreKeyBit(16384 * 8))).toBe('ERR_OUT_OF_RANGE');
  });

  it('re-keying changes the parts, never the key', () => {
    const expected = randomBytes(32);
    const enclave = newEnclave(Buffer.from(expected));
    const rekeys = keyInfo().rekeys;
    for (let i = 0; i < 5; i += 1) testHooks.rekeyNow();
    expect(keyInfo().rekeys).toBe(rekeys + 5);
    using opened = enclave.open();
    expect(opened.equalTo(expected)).toBe(true);
  });

  it('purge() replaces the key: Enclaves sealed before refuse to open with ERR_INTEGRITY, new ones work', () => {
    const old = newEnclave(randomBytes(32));
    const opened = old.open();
    const epoch = keyInfo().epoch;
    purge();
    expect(opened.isAlive).toBe(false);
    expect(keyInfo()).toMatchObject({ epoch: epoch + 1, storage: undefined });
    expect(code(() => old.open())).toBe('ERR_INTEGRITY');
    const fresh = newEnclave(Buffer.from([1, 2, 3]));
    using again = fresh.open();
    expect([...again.bytes()]).toEqual([1, 2, 3]);
    expect(code(() => old.open())).toBe('ERR_INTEGRITY');
  });
});

describe('the pool', () => {
  it('open() reuses a region of the right size class: no new mapping, data wiped on return, canary intact', () => {
    const enclave = newEnclave(new Uint8Array(32).fill(0xee));
    const first = enclave.open();
    const { address } = locate(first);
    first.destroy();
    // Wiped on return; the region stays mapped in the pool, locked, not dumped, wiped on fork.
    for (let i = 0n; i < 32n; i += 1n) expect(peekSelf(address + i)).toBe(0);
    expect(mappingsAt(address)[0]?.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    const before = poolStats();
    expect(before.free).toBeGreaterThanOrEqual(1);
    const second = enclave.open();
    expect(locate(second).address).toBe(address);
    expect(peekSelf(address)).toBe(0xee);
    expect(poolStats()).toMatchObject({ hits: before.hits + 1, misses: before.misses, free: before.free - 1 });
    second.destroy();
    expect(poolStats()).toMatchObject({ returned: before.returned + 1, free: before.free });
  });

  it('a region reused for a smaller or a larger size has a full canary and zero data', () => {
    const small = newEnclave(new Uint8Array(10).fill(1));
    const large = newEnclave(new Uint8Array(2000).fill(2));
    const before = poolStats();
    for (const [enclave, fill] of [[large, 2], [small, 1], [large, 2], [small, 1]] as const) {
      using opened = enclave.open();
      // equalTo reads through the buffer's own view: no view is handed out, so the region is pooled again.
      expect(opened.equalTo(new Uint8Array(opened.size).fill(fill))).toBe(true);
    }
    // One mapping served all four (same size class); its canary was checked at every return.
    expect(poolStats()).toMatchObject({ misses: before.misses + (before.free > 0 ? 0 : 1), discarded: before.discarded });
  });

  it('is bounded per size class, and purge() unmaps it', () => {
    const enclave = newEnclaveRandom(64);
    const open = Array.from({ length: POOL_MAX_PER_CLASS + 4 }, () => enclave.open());
    const before = poolStats();
    for (const b of open) b.destroy();
    const after = poolStats();
    expect(after.free - before.free).toBe(POOL_MAX_PER_CLASS - before.free);
    expect(after.discarded - before.discarded).toBe(4 + before.free);
    purge();
    expect(poolStats()).toMatchObject({ free: 0, freeLockedBytes: 0 });
  });

  it('a buffer with a damaged canary is not pooled: destroy() throws ERR_INTEGRITY and the region is unmapped', async () => {
    const { pokeSelf } = await import('./helpers.js');
    const enclave = newEnclaveRandom(32);
    const opened = enclave.open();
    const { address } = locate(opened);
    pokeSelf(address - 1n, peekSelf(address - 1n) ^ 1);
    const before = poolStats();
    expect(code(() => opened.destroy())).toBe('ERR_INTEGRITY');
    expect(poolStats()).toMatchObject({ free: before.free, discarded: before.discarded + 1 });
    expect(mappingsAt(address)[0]).toBeUndefined();
  });
});

describe('Stream', () => {
  it('round-trips 10 MiB: write wipes the source, flush returns it all in one frozen buffer', () => {
    const size = 10 * 1024 * 1024;
    const data = randomBytes(size);
    const copy = Buffer.from(data);
    const stream = new Stream();
    expect(stream.write(data.subarray(0, 3 * 1024 * 1024 + 5))).toBe(3 * 1024 * 1024 + 5);
    expect(stream.write(data.subarray(3 * 1024 * 1024 + 5))).toBe(size - 3 * 1024 * 1024 - 5);
    expect(data.every((b) => b === 0)).toBe(true);
    expect(stream.size).toBe(size);
    const all = stream.flush();
    expect(all?.size).toBe(size);
    expect(all?.isMutable).toBe(false);
    expect(all?.equalTo(copy)).toBe(true);
    expect(stream.size).toBe(0);
    expect(stream.flush()).toBeUndefined();
    all?.destroy();
  });

  it('read() copies at most one chunk per call and seals what does not fit back at the front; next() hands out chunks', () => {
    const data = randomBytes(STREAM_CHUNK_SIZE + 100);
    const copy = Buffer.from(data);
    const stream = new Stream();
    stream.write(data);
    const out = Buffer.alloc(STREAM_CHUNK_SIZE + 100);
    expect(stream.read(out.subarray(0, 10))).toBe(10);
    expect(stream.size).toBe(STREAM_CHUNK_SIZE + 90);
    expect(stream.read(out.subarray(10))).toBe(STREAM_CHUNK_SIZE - 10); // the rest of the first chunk only
    const last = stream.next();
    expect(last?.size).toBe(100);
    out.set(last?.bytes() ?? [], STREAM_CHUNK_SIZE);
    last?.destroy();
    expect(out.equals(copy)).toBe(true);
    expect(stream.size).toBe(0);
    expect(stream.read(out)).toBe(0);
    expect(stream.next()).toBeUndefined();
    expect(stream.write(new Uint8Array(0))).toBe(0);
  });

  it('refuses bad arguments; after a purge its chunks give ERR_INTEGRITY and it is left unchanged', () => {
    const stream = new Stream();
    expect(code(() => stream.write('x' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => stream.read(null as never))).toBe('ERR_INVALID_ARG_TYPE');
    const frozen = newBufferFromBytes(Uint8Array.of(1, 2, 3));
    expect(code(() => stream.write(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED');
    stream.write(randomBytes(100));
    expect(code(() => stream.read(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED');
    purge();
    expect(code(() => stream.flush())).toBe('ERR_INTEGRITY');
    expect(code(() => stream.next())).toBe('ERR_INTEGRITY');
    expect(code(() => stream.read(new Uint8Array(10)))).toBe('ERR_INTEGRITY');
    expect(stream.size).toBe(100);
    expect(String(stream)).toBe('Stream(100 bytes)');
  });
});

it('the PAGE constant agrees with the addon', () => {
  expect(PAGE).toBeGreaterThan(0);
});
