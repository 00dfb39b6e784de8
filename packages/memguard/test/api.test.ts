// Issue #19: memguard's documented calls that were missing or different, ported from the behaviour
// memguard's own tests check (buffer_test.go, stream_test.go, memguard_test.go).
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Stream,
  createFactory,
  newBuffer,
  newBufferFromBytes,
  newBufferFromFdToEnd,
  newBufferFromStream,
  newBufferRandom,
  purge,
  scrambleBytes,
  wipeBytes,
} from '@secure-memory/memguard';
import { code } from './helpers.js';

const pattern = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed * 37 + i * 11) & 0xff);

describe('closed is true for every secret a purge destroyed (memguard: IsClosed)', () => {
  it.each(['enclave', 'locked'] as const)('%s mode: idle secrets, and one in an access (closed when it ends)', async (mode) => {
    const factory = createFactory({ mode });
    const idle = factory.new(pattern(32));
    const busy = factory.createRandom(16);
    const access = busy.withBytesAsync(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
    });
    purge();
    const during = busy.closed;
    await access;
    expect(idle.closed).toBe(true);
    expect(during).toBe(true);
    expect(busy.closed).toBe(true);
    expect(code(() => idle.withBytes(() => 0))).toBe('ERR_SECRET_CLOSED');
    expect(factory.stats().inUse).toBe(0);
    const fresh = factory.new(pattern(8)); // the factory still works
    expect(fresh.closed).toBe(false);
    fresh.close();
  });
});

describe('wipeBytes and scrambleBytes, for buffers the caller owns', () => {
  it.each([16, 64, 65, 4096])('%i bytes: scramble fills from the CSPRNG, wipe zeroes', (n) => {
    const buf = new Uint8Array(n);
    scrambleBytes(buf);
    expect(buf.some((b) => b !== 0)).toBe(true);
    const again = Uint8Array.from(buf);
    scrambleBytes(buf);
    expect(Buffer.from(buf).equals(again)).toBe(false);
    wipeBytes(buf);
    expect(buf.every((b) => b === 0)).toBe(true);
  });

  it("refuses what is not a Uint8Array, and this package's read-only or released memory", () => {
    expect(code(() => wipeBytes('abc' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => scrambleBytes(null as never))).toBe('ERR_INVALID_ARG_TYPE');
    using frozen = newBufferRandom(16);
    expect(code(() => wipeBytes(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED');
    const mutable = newBuffer(16);
    const view = mutable.bytes();
    scrambleBytes(view);
    expect(view.some((b) => b !== 0)).toBe(true);
    wipeBytes(view);
    expect(mutable.equalTo(new Uint8Array(16))).toBe(true);
    mutable.destroy();
    expect(code(() => wipeBytes(view))).toBe('ERR_SECRET_CLOSED');
  });
});

describe('typed views (memguard: Uint16(), ..., Int64())', () => {
  it('length rounded down, over the same memory, little-endian as the machine', () => {
    using buf = newBuffer(10);
    buf.copy(Uint8Array.of(1, 0, 2, 0, 3, 0, 4, 0, 5, 0));
    const u16 = buf.typed(Uint16Array);
    expect(Array.from(u16)).toEqual([1, 2, 3, 4, 5]);
    expect(buf.typed(Uint32Array).length).toBe(2);
    expect(buf.typed(BigUint64Array).length).toBe(1);
    expect(buf.typed(Int8Array).length).toBe(10);
    u16[0] = 0x0102;
    expect(buf.bytes()[0]).toBe(0x02);
    expect(buf.bytes()[1]).toBe(0x01);
  });

  it('refuses other types; after destroy throws ERR_SECRET_CLOSED', () => {
    const buf = newBuffer(8);
    expect(code(() => buf.typed(Float64Array as never))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => buf.typed(Array as never))).toBe('ERR_INVALID_ARG_VALUE');
    buf.destroy();
    expect(code(() => buf.typed(Uint16Array))).toBe('ERR_SECRET_CLOSED');
  });
});

describe('LockedBuffer.reader() (memguard: Reader())', () => {
  it('reads the data in order, in pieces, then 0 at the end; after destroy ERR_SECRET_CLOSED', () => {
    const data = pattern(100, 3);
    const buf = newBufferFromBytes(Uint8Array.from(data));
    const reader = buf.reader();
    const out = new Uint8Array(100);
    let done = 0;
    for (let n = reader.read(out.subarray(done, done + 30)); n > 0; n = reader.read(out.subarray(done, done + 30))) done += n;
    expect(done).toBe(100);
    expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
    expect(reader.read(new Uint8Array(4))).toBe(0);
    buf.destroy();
    expect(code(() => reader.read(new Uint8Array(4)))).toBe('ERR_SECRET_CLOSED');
  });
});

describe('newBufferFromFdToEnd (memguard: NewBufferFromEntireReader)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'memguard-toend-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fromFile = (bytes: Uint8Array) => {
    const path = join(dir, `f${bytes.byteLength}`);
    writeFileSync(path, bytes);
    const fd = openSync(path, 'r');
    try {
      return newBufferFromFdToEnd(fd);
    } finally {
      closeSync(fd);
    }
  };

  it.each([1, 100, 4080, 4081, 20_000])('%i bytes: a frozen buffer of exactly the input', (n) => {
    const data = pattern(n, 5);
    using buf = fromFile(data);
    expect(buf.size).toBe(n);
    expect(buf.isMutable).toBe(false);
    expect(buf.equalTo(data)).toBe(true);
  });

  it('an empty input is ERR_INVALID_SIZE; a bad fd ERR_OUT_OF_RANGE', () => {
    expect(code(() => fromFile(new Uint8Array(0)))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBufferFromFdToEnd(-1))).toBe('ERR_OUT_OF_RANGE');
  });
});

describe('a Stream as the source of a buffer (memguard: NewBufferFromReader(stream, n))', () => {
  it('reads across chunks into a frozen buffer; a short stream is an error unless partial', () => {
    const data = pattern(40_000, 7);
    const stream = new Stream();
    stream.write(Uint8Array.from(data));
    using all = newBufferFromStream(stream, 40_000);
    expect(all.isMutable).toBe(false);
    expect(all.equalTo(data)).toBe(true);
    expect(stream.size).toBe(0);

    stream.write(pattern(20, 8));
    expect(code(() => newBufferFromStream(stream, 32))).toBe('ERR_INVALID_SIZE');
    stream.write(pattern(20, 9));
    using part = newBufferFromStream(stream, 32, { partial: true });
    expect(part.size).toBe(20);
    expect(part.equalTo(pattern(20, 9))).toBe(true);
    expect(code(() => newBufferFromStream(new Stream(), 8))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBufferFromStream({} as never, 8))).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('after a purge, a read reports ERR_INTEGRITY, also into an empty target', () => {
    const stream = new Stream();
    stream.write(pattern(10));
    purge();
    expect(code(() => stream.read(new Uint8Array(0)))).toBe('ERR_INTEGRITY');
    expect(code(() => stream.read(new Uint8Array(4)))).toBe('ERR_INTEGRITY');
    expect(code(() => newBufferFromStream(stream, 10))).toBe('ERR_INTEGRITY');
  });
});
