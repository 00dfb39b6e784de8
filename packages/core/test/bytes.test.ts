import { describe, expect, it } from 'vitest';
import {
  type RegionFill,
  SecretFactoryBase,
  type SecretRegion,
  assertBytes,
  assertFd,
  defineGuarantees,
  ingestBytes,
  isUint8Array,
} from '@secure-memory/core/backend';

/** A factory over plain ArrayBuffers (no protection): enough to drive core's argument handling. */
class HeapFactory extends SecretFactoryBase {
  readonly name = 'heap';
  readonly guarantees = defineGuarantees();
  protected allocate(size: number, fill: RegionFill): SecretRegion {
    const bytes = new Uint8Array(new ArrayBuffer(size));
    fill(bytes);
    return { protectRead: () => bytes, protectIdle: () => {}, wipe: () => bytes.fill(0), free: () => {} };
  }
  protected backendStats() {
    return { lockedBytes: 0 };
  }
}

const error = (fn: () => unknown): { code?: unknown; name?: unknown; ctor?: unknown } => {
  try {
    fn();
  } catch (e) {
    return { code: (e as { code?: unknown }).code, name: (e as Error).name, ctor: (e as object).constructor.name };
  }
  return { code: 'no error' };
};

const fakes: [string, () => unknown][] = [
  ['Object.create(Uint8Array.prototype)', () => Object.create(Uint8Array.prototype)],
  ['new Proxy(new Uint8Array(8), {})', () => new Proxy(new Uint8Array(8), {})],
  ['a revoked proxy', () => {
    const { proxy, revoke } = Proxy.revocable(new Uint8Array(8), {});
    revoke();
    return proxy;
  }],
  ['a Uint16Array', () => new Uint16Array(4)],
  ['a DataView', () => new DataView(new ArrayBuffer(8))],
];

describe('bad byte arguments get ERR_INVALID_ARG_TYPE, never a raw TypeError', () => {
  const factory = new HeapFactory();
  it.each(fakes)('%s given to new, equals and reader().read', (_, make) => {
    const secret = factory.createRandom(8);
    expect(error(() => factory.new(make() as Uint8Array))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(error(() => secret.equals(make() as Uint8Array))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(error(() => secret.reader().read(make() as Uint8Array))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(error(() => assertBytes(make(), 'x'))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(isUint8Array(make())).toBe(false);
    secret.close();
  });

  it('accepts Uint8Array, Buffer and subclasses, and a subclass cannot intercept the copy or the wipe', () => {
    class Sneaky extends Uint8Array {
      override fill(): this {
        throw new Error('own fill called');
      }
      override set(): void {
        throw new Error('own set called');
      }
    }
    const source = new Sneaky(8).map((_, i) => i + 1) as Sneaky;
    const secret = factory.new(source);
    expect([...source]).toEqual(new Array(8).fill(0));
    expect(secret.equals(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))).toBe(true);
    expect(secret.equals(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))).toBe(true);
    const target = new Sneaky(8);
    expect(secret.reader().read(target)).toBe(8);
    expect([...Uint8Array.from(target)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a detached source is ERR_INVALID_ARG_VALUE', () => {
    const buffer = new ArrayBuffer(8);
    const view = new Uint8Array(buffer);
    structuredClone(buffer, { transfer: [buffer] });
    expect(error(() => factory.new(view))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
  });
});

describe('ingestBytes', () => {
  it('wipes the source only after place copied it, and leaves it whole when place throws', () => {
    const source = Uint8Array.of(5, 6, 7);
    const copy = ingestBytes(source, 'source', 16, (size, copyInto) => {
      const target = new Uint8Array(size);
      copyInto(target);
      expect([...source]).toEqual([5, 6, 7]);
      return target;
    });
    expect([...copy]).toEqual([5, 6, 7]);
    expect([...source]).toEqual([0, 0, 0]);
    const kept = Uint8Array.of(1, 2);
    expect(() =>
      ingestBytes(kept, 'source', 16, () => {
        throw new Error('no memory');
      }),
    ).toThrow('no memory');
    expect([...kept]).toEqual([1, 2]);
  });
});

describe('values out of range are ERR_OUT_OF_RANGE (RangeError), as in Node', () => {
  const factory = new HeapFactory();
  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('fromFd(%s, 32)', (fd) => {
    expect(error(() => factory.fromFd(fd, 32))).toEqual({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError', ctor: 'SecureMemoryRangeError' });
    expect(error(() => assertFd(fd, 'fd'))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });
  it('a non-number fd stays ERR_INVALID_ARG_TYPE', () => {
    expect(error(() => factory.fromFd('3' as never, 32))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
  });
});


