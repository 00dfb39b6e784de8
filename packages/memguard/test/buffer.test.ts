// LockedBuffer, in process: every method, the layout in /proc/self/smaps, the canary, and views that
// are revoked (detached external ArrayBuffers) rather than left dangling.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type LockedBuffer,
  lockedBufferStats,
  newBuffer,
  newBufferFromBytes,
  newBufferRandom,
} from '@secure-memory/memguard';
import { releasedAfterEach } from '../../testkit/test/tracked.js';
import { PAGE, code, locate, mappingsAt, peekSelf, pokeSelf } from './helpers.js';

// A buffer whose canary a test damaged throws at destroy: that test already saw the error.
const track = releasedAfterEach((buffer: LockedBuffer) => buffer.destroy(), {
  damaged: true,
  then: () => expect(lockedBufferStats()).toMatchObject({ buffers: 0, lockedBytes: 0, mappedBytes: 0, leaked: 0 }),
});

describe('newBuffer', () => {
  it('makes a mutable, zeroed, live buffer of the size asked', () => {
    const buf = track(newBuffer(32));
    expect(buf.size).toBe(32);
    expect(buf.isAlive).toBe(true);
    expect(buf.isMutable).toBe(true);
    expect([...buf.bytes()]).toEqual(new Array(32).fill(0));
    expect(lockedBufferStats()).toMatchObject({ buffers: 1, lockedBytes: PAGE, mappedBytes: 3 * PAGE });
  });

  it('refuses bad sizes and options with typed errors', () => {
    expect(code(() => newBuffer(0))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBuffer(-1))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBuffer(1.5))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBuffer(2 ** 30 + 1))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBuffer(Number.NaN))).toBe('ERR_INVALID_SIZE');
    expect(code(() => newBuffer('32' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => newBuffer(32, 'debug' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => newBuffer(32, { debug: 'yes' as never }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(() => newBuffer(0)).toThrow(RangeError);
    expect(lockedBufferStats().buffers).toBe(0);
  });

  it('lays out [guard][canary | data][guard]: data right-aligned, guards inaccessible, inner pages locked, not dumped, wiped on fork', () => {
    for (const size of [1, 32, PAGE - 16, PAGE - 15, PAGE, 3 * PAGE + 5]) {
      const buf = track(newBuffer(size));
      const { address, size: reported } = locate(buf);
      expect(reported).toBe(size);
      // Right-aligned: the byte after the data starts a page (the trailing guard page).
      expect((address + BigInt(size)) % BigInt(PAGE)).toBe(0n);
      const innerPages = Math.ceil((size + 16) / PAGE);
      const firstInner = address + BigInt(size) - BigInt(innerPages * PAGE);
      const [data, before, after] = mappingsAt(address, firstInner - 1n, address + BigInt(size));
      expect(data?.perms).toBe('rw-p');
      expect(data?.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
      expect(data?.end).toBe(address + BigInt(size));
      expect(data?.start).toBe(firstInner);
      expect(before?.perms).toBe('---p');
      expect(before?.flags).not.toContain('lo');
      expect(after?.perms).toBe('---p');
      // At least 16 canary bytes before the data, in the first inner page.
      expect(address - firstInner).toBeGreaterThanOrEqual(16n);
      expect(address - firstInner).toBeLessThan(BigInt(PAGE + 16));
    }
  });
});

describe('newBufferFromBytes', () => {
  it('copies the source into a frozen buffer and zero-fills the source', () => {
    const source = randomBytes(48);
    const expected = Buffer.from(source);
    const buf = track(newBufferFromBytes(source));
    expect(buf.equalTo(expected)).toBe(true);
    expect(buf.isMutable).toBe(false);
    expect(source.every((b) => b === 0)).toBe(true);
    const [data] = mappingsAt(locate(buf).address);
    expect(data?.perms).toBe('r--p');
  });

  it('refuses a read-only view as the source (it could not be wiped) and leaves it as it was', () => {
    const frozen = track(newBufferRandom(32));
    const before = Buffer.from(frozen.bytes());
    expect(code(() => newBufferFromBytes(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED');
    expect(frozen.equalTo(before)).toBe(true);
    expect(lockedBufferStats().buffers).toBe(1);
  });

  it('refuses an empty, a detached and a non-byte source', () => {
    expect(code(() => newBufferFromBytes(new Uint8Array(0)))).toBe('ERR_INVALID_SIZE');
    const detached = new Uint8Array(8);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    expect(code(() => newBufferFromBytes(detached))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => newBufferFromBytes([1, 2, 3] as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => newBufferFromBytes('key' as never))).toBe('ERR_INVALID_ARG_TYPE');
  });
});

describe('newBufferRandom', () => {
  it('makes a frozen buffer of CSPRNG bytes, different each time', () => {
    const a = track(newBufferRandom(32));
    const b = track(newBufferRandom(32));
    expect(a.isMutable).toBe(false);
    expect(a.equalTo(new Uint8Array(32))).toBe(false);
    expect(a.equalTo(b.bytes())).toBe(false);
  });
});

describe('views of a destroyed buffer are never an empty key: their memory is wiped and PROT_NONE', () => {
  it('bytes() is one view straight into the locked data; destroy leaves it and every alias attached over wiped, inaccessible memory', () => {
    const buf = track(newBuffer(32));
    const view = buf.bytes();
    expect(buf.bytes()).toBe(view);
    view.set([1, 2, 3]);
    expect(peekSelf(locate(buf).address + 1n)).toBe(2); // the view is the locked memory itself
    const alias = Buffer.from(view.buffer);
    const sub = new DataView(view.buffer, 4, 8);
    const { address } = locate(buf);
    buf.destroy();
    // Not detached (a byteLength-0 view is an empty key to node:crypto); reading it would fault.
    expect(view.byteLength).toBe(32);
    expect(alias.byteLength).toBe(32);
    expect(sub.byteLength).toBe(8);
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    expect(peekSelf(address + 1n)).toBe(0); // wiped
    // Handed back to this package, a dead view is a typed error, not a fault.
    expect(code(() => newBufferFromBytes(view))).toBe('ERR_SECRET_CLOSED');
    const target = track(newBuffer(8));
    expect(code(() => target.copy(view.subarray(0, 8)))).toBe('ERR_SECRET_CLOSED');
  });

  it('a destroyed buffer: size 0, not alive, not mutable; bytes() and mutators throw ERR_SECRET_CLOSED; equalTo is false; wipe and destroy do nothing', () => {
    const buf = newBuffer(16);
    buf.destroy();
    expect(buf.size).toBe(0);
    expect(buf.isAlive).toBe(false);
    expect(buf.isMutable).toBe(false);
    expect(String(buf)).toBe('LockedBuffer(destroyed)');
    for (const fn of [
      () => buf.bytes(),
      () => buf.freeze(),
      () => buf.melt(),
      () => buf.copy(new Uint8Array(1)),
      () => buf.move(new Uint8Array(1)),
      () => buf.scramble(),
    ]) {
      expect(code(fn)).toBe('ERR_SECRET_CLOSED');
    }
    expect(buf.equalTo(new Uint8Array(16))).toBe(false);
    expect(() => buf.wipe()).not.toThrow();
    expect(() => buf.destroy()).not.toThrow();
  });

  it('`using` destroys at the end of the block', () => {
    let view: Uint8Array;
    {
      using buf = newBuffer(8);
      view = buf.bytes();
      expect(view.byteLength).toBe(8);
      expect(buf.isAlive).toBe(true);
    }
    expect(code(() => newBufferFromBytes(view))).toBe('ERR_SECRET_CLOSED'); // destroyed
  });
});

describe('freeze and melt', () => {
  it('switch the data between read-only and read-write (checked in smaps)', () => {
    const buf = track(newBuffer(32));
    const { address } = locate(buf);
    buf.freeze();
    expect(buf.isMutable).toBe(false);
    expect(mappingsAt(address)[0]?.perms).toBe('r--p');
    expect(String(buf)).toBe('LockedBuffer(32 bytes, frozen)');
    buf.melt();
    expect(buf.isMutable).toBe(true);
    expect(mappingsAt(address)[0]?.perms).toBe('rw-p');
  });

  it('a frozen buffer refuses every write with ERR_PROTECTION_FAILED instead of faulting', () => {
    const buf = track(newBufferRandom(32));
    const before = Buffer.from(buf.bytes());
    const src = Buffer.alloc(32, 7);
    expect(code(() => buf.copy(src))).toBe('ERR_PROTECTION_FAILED');
    expect(code(() => buf.copyAt(1, src))).toBe('ERR_PROTECTION_FAILED');
    expect(code(() => buf.move(src))).toBe('ERR_PROTECTION_FAILED');
    expect(code(() => buf.moveAt(1, src))).toBe('ERR_PROTECTION_FAILED');
    expect(code(() => buf.wipe())).toBe('ERR_PROTECTION_FAILED');
    expect(code(() => buf.scramble())).toBe('ERR_PROTECTION_FAILED');
    expect(buf.equalTo(before)).toBe(true);
    expect(src.every((b) => b === 7)).toBe(true); // move refused: the source is not wiped
  });
});

describe('copy, copyAt, move, moveAt', () => {
  it('copy writes min(src, size) bytes from the start and leaves the source', () => {
    const buf = track(newBuffer(4));
    const src = Uint8Array.of(1, 2, 3, 4, 5, 6);
    buf.copy(src);
    expect([...buf.bytes()]).toEqual([1, 2, 3, 4]);
    buf.copy(Uint8Array.of(9));
    expect([...buf.bytes()]).toEqual([9, 2, 3, 4]);
    expect([...src]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('copyAt writes from the offset, truncated at the end; offset = size copies nothing', () => {
    const buf = track(newBuffer(4));
    buf.copyAt(2, Uint8Array.of(7, 8, 9));
    expect([...buf.bytes()]).toEqual([0, 0, 7, 8]);
    buf.copyAt(4, Uint8Array.of(1));
    expect([...buf.bytes()]).toEqual([0, 0, 7, 8]);
  });

  it('move and moveAt copy, then zero-fill the whole source', () => {
    const buf = track(newBuffer(4));
    const src = Uint8Array.of(1, 2, 3, 4, 5, 6);
    buf.move(src);
    expect([...buf.bytes()]).toEqual([1, 2, 3, 4]);
    expect([...src]).toEqual([0, 0, 0, 0, 0, 0]);
    const more = Uint8Array.of(5, 6);
    buf.moveAt(3, more);
    expect([...buf.bytes()]).toEqual([1, 2, 3, 5]);
    expect([...more]).toEqual([0, 0]);
  });

  it('move from another buffer wipes that buffer; from a frozen buffer it is refused before anything is copied', () => {
    const from = track(newBuffer(8));
    from.copy(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    const to = track(newBuffer(8));
    to.move(from.bytes());
    expect([...to.bytes()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(from.equalTo(new Uint8Array(8))).toBe(true);
    const frozen = track(newBufferRandom(8));
    const fresh = track(newBuffer(8));
    expect(code(() => fresh.move(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED');
    expect(fresh.equalTo(new Uint8Array(8))).toBe(true);
    // Copying from a frozen buffer is fine: it is only read.
    fresh.copy(frozen.bytes());
    expect(fresh.equalTo(frozen.bytes())).toBe(true);
  });

  it('refuses bad offsets and sources with typed errors', () => {
    const buf = track(newBuffer(4));
    for (const offset of [-1, 5, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(code(() => buf.copyAt(offset, Uint8Array.of(1)))).toBe('ERR_OUT_OF_RANGE');
      expect(() => buf.moveAt(offset, Uint8Array.of(1))).toThrow(RangeError);
    }
    expect(code(() => buf.copyAt('1' as never, Uint8Array.of(1)))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => buf.copy('abc' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => buf.move(null as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => buf.copy.call({}, Uint8Array.of(1)))).toBe('ERR_INVALID_THIS');
    expect([...buf.bytes()]).toEqual([0, 0, 0, 0]);
  });
});

describe('equalTo, wipe, scramble', () => {
  it('equalTo compares in constant time: equal, one bit off, shorter, longer', () => {
    const bytes = randomBytes(32);
    const buf = track(newBufferFromBytes(Buffer.from(bytes)));
    expect(buf.equalTo(bytes)).toBe(true);
    const flipped = Buffer.from(bytes);
    flipped[31] = (flipped[31] as number) ^ 1;
    expect(buf.equalTo(flipped)).toBe(false);
    expect(buf.equalTo(bytes.subarray(1))).toBe(false);
    expect(buf.equalTo(Buffer.concat([bytes, Buffer.of(0)]))).toBe(false);
    expect(code(() => buf.equalTo('x' as never))).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('wipe zero-fills the data and leaves the canary', () => {
    const buf = track(newBuffer(32));
    buf.scramble();
    const canary = peekSelf(locate(buf).address - 1n);
    buf.wipe();
    expect(buf.equalTo(new Uint8Array(32))).toBe(true);
    expect(peekSelf(locate(buf).address - 1n)).toBe(canary);
    expect(() => buf.destroy()).not.toThrow();
  });

  it('scramble fills the data with fresh random bytes', () => {
    const buf = track(newBuffer(32));
    buf.scramble();
    const first = Buffer.from(buf.bytes());
    expect(first.equals(Buffer.alloc(32))).toBe(false);
    buf.scramble();
    expect(buf.equalTo(first)).toBe(false);
  });
});

describe('destroy and the canary', () => {
  it('unmaps the allocation (guards included) and releases the locked bytes', () => {
    const buf = newBuffer(100);
    const { address } = locate(buf);
    buf.destroy();
    expect(mappingsAt(address - BigInt(PAGE), address, address + 100n).some((m) => m?.flags.includes('wf') && m.flags.includes('dd'))).toBe(false);
    expect(lockedBufferStats()).toMatchObject({ buffers: 0, lockedBytes: 0 });
  });

  it('a write just before the data makes destroy throw ERR_INTEGRITY after wiping and freeing', () => {
    const buf = newBufferRandom(32);
    const view = buf.bytes();
    const { address } = locate(buf);
    pokeSelf(address - 1n, peekSelf(address - 1n) ^ 0xff);
    expect(code(() => buf.destroy())).toBe('ERR_INTEGRITY');
    expect(buf.isAlive).toBe(false);
    expect(mappingsAt(address)[0]?.perms).toBe('---p'); // the view's memory: wiped, inaccessible
    expect(view.byteLength).toBe(32);
    expect(lockedBufferStats()).toMatchObject({ buffers: 0, lockedBytes: 0 });
    expect(() => buf.destroy()).not.toThrow(); // reported once
  });

  it('catches a write at the far end of the canary too, also when the data fills whole pages', () => {
    for (const size of [32, PAGE]) {
      const buf = newBuffer(size);
      const { address } = locate(buf);
      const firstInner = address + BigInt(size) - BigInt(Math.ceil((size + 16) / PAGE) * PAGE);
      pokeSelf(firstInner, peekSelf(firstInner) ^ 1);
      expect(code(() => buf.destroy())).toBe('ERR_INTEGRITY');
    }
  });

  it('the canary is random per buffer', () => {
    const a = track(newBuffer(32));
    const b = track(newBuffer(32));
    const read = (buf: LockedBuffer) => Array.from({ length: 16 }, (_, i) => peekSelf(locate(buf).address - 16n + BigInt(i)));
    expect(read(a)).not.toEqual(read(b));
  });

  it('redacts itself everywhere', () => {
    const buf = track(newBufferRandom(32));
    expect(String(buf)).toBe('LockedBuffer(32 bytes, frozen)');
    expect(`${buf}`).toBe('LockedBuffer(32 bytes, frozen)');
    expect(JSON.stringify({ buf })).toBe('{"buf":"LockedBuffer(32 bytes, frozen)"}');
  });
});
