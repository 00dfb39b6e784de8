// Issue #13 (hardening), in process: what a careless caller can do must fail with a typed error.
// The parts that need an outside scan, a fault or another Node live in hardening-children.test.ts.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catchSignal, newBuffer, newBufferFromFd, newBufferFromFdUntil, newEnclave, safeExit } from '@secure-memory/memguard';
import { testHooks } from '../src/testing.js';
import { code } from './helpers.js';

describe('catchSignal refuses the synchronous fault signals', () => {
  it.each(['SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL'] as const)('%s: ERR_INVALID_ARG_VALUE, and no listener is installed', (signal) => {
    const before = process.listenerCount(signal);
    const error = (() => {
      try {
        catchSignal(() => {}, 'SIGTERM', signal);
      } catch (e) {
        return e as Error & { code?: string };
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(TypeError);
    expect(error?.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(process.listenerCount(signal)).toBe(before);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('control: an ordinary signal is accepted', () => {
    expect(code(() => catchSignal(() => {}, 'SIGUSR2'))).toBe('no error');
    expect(process.listenerCount('SIGUSR2')).toBe(1);
  });
});

/** The error `fn` throws (fails the test when it does not throw). */
const thrown = (fn: () => unknown): Error & { code?: string } => {
  try {
    fn();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a throw');
};

describe('values out of range are ERR_OUT_OF_RANGE RangeErrors, as in Node', () => {
  it.each([-1, 2 ** 31, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('newBufferFromFd(%d, 32)', (fd) => {
    const error = thrown(() => newBufferFromFd(fd, 32));
    expect(error).toBeInstanceOf(RangeError);
    expect(error.code).toBe('ERR_OUT_OF_RANGE');
  });

  it('newBufferFromFdUntil: a bad fd or delimiter', () => {
    for (const [fd, delim] of [[-1, 10], [0, 256], [0, -1], [0, 0.5]] as const) {
      const error = thrown(() => newBufferFromFdUntil(fd, delim));
      expect(error).toBeInstanceOf(RangeError);
      expect(error.code).toBe('ERR_OUT_OF_RANGE');
    }
    expect(thrown(() => newBufferFromFd('3' as never, 32)).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('copyAt/moveAt with an offset past the end, and safeExit(256) (nothing happens)', () => {
    using buf = newBuffer(4);
    for (const error of [thrown(() => buf.copyAt(5, Uint8Array.of(1))), thrown(() => buf.moveAt(-1, Uint8Array.of(1))), thrown(() => safeExit(256))]) {
      expect(error).toBeInstanceOf(RangeError);
      expect(error.code).toBe('ERR_OUT_OF_RANGE');
    }
  });
});

describe('short reads are errors unless the caller asks for a partial read', () => {
  let dir: string;
  const file = (name: string, bytes: Uint8Array): string => {
    const path = join(dir, name);
    writeFileSync(path, bytes, { mode: 0o600 });
    return path;
  };
  const withFd = <T>(path: string, fn: (fd: number) => T): T => {
    const fd = openSync(path, 'r');
    try {
      return fn(fd);
    } finally {
      closeSync(fd);
    }
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'memguard-short-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('newBufferFromFd(fd, 32) on 20 bytes: ERR_INVALID_SIZE; with { partial: true }: a 20-byte buffer', () => {
    const bytes = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    const path = file('twenty', bytes);
    const error = withFd(path, (fd) => thrown(() => newBufferFromFd(fd, 32)));
    expect(error).toBeInstanceOf(RangeError);
    expect(error.code).toBe('ERR_INVALID_SIZE');
    using partial = withFd(path, (fd) => newBufferFromFd(fd, 32, { partial: true }));
    expect(partial.size).toBe(20);
    expect(partial.equalTo(bytes)).toBe(true);
    using exact = withFd(path, (fd) => newBufferFromFd(fd, 20));
    expect(exact.equalTo(bytes)).toBe(true);
    expect(thrown(() => withFd(path, (fd) => newBufferFromFd(fd, 32, { partial: 1 as never }))).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('newBufferFromFdUntil without the delimiter: ERR_INVALID_SIZE; with { partial: true }: what was read', () => {
    const path = file('no-newline', new TextEncoder().encode('secret-without-newline'));
    const error = withFd(path, (fd) => thrown(() => newBufferFromFdUntil(fd, 0x0a)));
    expect(error.code).toBe('ERR_INVALID_SIZE');
    using partial = withFd(path, (fd) => newBufferFromFdUntil(fd, 0x0a, { partial: true }));
    expect(partial.equalTo(new TextEncoder().encode('secret-without-newline'))).toBe(true);
    using line = withFd(file('line', new TextEncoder().encode('abc\ndef')), (fd) => newBufferFromFdUntil(fd, 0x0a));
    expect(line.equalTo(new TextEncoder().encode('abc'))).toBe(true);
  });
});

describe('a sealed box is bound to its Enclave', () => {
  it("B's box copied over A's: A.open() fails with ERR_INTEGRITY, never gives B's plaintext; B still opens", () => {
    const a = newEnclave(Uint8Array.from({ length: 32 }, (_, i) => i));
    const b = newEnclave(Uint8Array.from({ length: 32 }, (_, i) => 100 + i));
    const boxA = testHooks.enclaveBox(a);
    const original = Uint8Array.from(boxA);
    {
      using opened = a.open();
      expect(opened.equalTo(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(true);
    }
    boxA.set(testHooks.enclaveBox(b));
    const error = thrown(() => a.open());
    expect(error.code).toBe('ERR_INTEGRITY');
    using fromB = b.open();
    expect(fromB.equalTo(Uint8Array.from({ length: 32 }, (_, i) => 100 + i))).toBe(true);
    boxA.set(original); // its own box opens again
    using again = a.open();
    expect(again.equalTo(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(true);
  });
});

describe('no public switch strips a protection', () => {
  it('the entry points export neither the test hooks nor anything of the fault seam', async () => {
    const main = await import('@secure-memory/memguard');
    expect(Object.keys(main)).not.toContain('testHooks');
    expect(Object.keys(main).filter((k) => /fault|floor|hook/i.test(k))).toEqual([]);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './bench', './package.json']);
    const bench = await import('@secure-memory/memguard/bench');
    expect(Object.keys(bench).sort()).toEqual(['FLOOR_PAGE_SIZE', 'runFloor', 'threadCpuNs']);
  });

  it('the release addon has no fault seam, no byte-flipping call and no floors; the test build has them (control)', () => {
    const load = createRequire(import.meta.url);
    const release = load(fileURLToPath(new URL('../build/Release/memguard.node', import.meta.url))) as Record<string, unknown>;
    const test = load(fileURLToPath(new URL('../native/extra/build/Release/memguard_test.node', import.meta.url))) as Record<string, unknown>;
    const seam = ['faultArm', 'faultSet', 'faultClear', 'faultCounts', 'FAULT_CALLS', 'xorByte'];
    expect(seam.filter((k) => k in release)).toEqual([]);
    // The floors are an addon of their own, with nothing of memguard's in it.
    expect(['run', 'threadCpuNs', 'floorMprotectPair', 'floorGuardedAlloc'].filter((k) => k in release || k in test)).toEqual([]);
    const floors = load(fileURLToPath(new URL('../native/extra/build/Release/memguard_bench.node', import.meta.url))) as Record<string, unknown>;
    expect(Object.keys(floors).sort()).toEqual(['PAGE_SIZE', 'run', 'threadCpuNs']);
    expect(release.TEST_SEAM).toBe(false);
    expect(seam.filter((k) => k in test)).toEqual(seam);
    expect(test.TEST_SEAM).toBe(true);
  });

  it('what npm publishes has no test hooks and no development addon', { timeout: 900_000 }, () => {
    const packed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
    });
    const files = (JSON.parse(packed.stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
    expect(files).toContain('dist/index.js'); // control: the listing is real
    expect(files).toContain('native/memguard.cc');
    // Every source of the release addon ships (binding.gyp names them), and the seam's does not.
    expect(files).toEqual(expect.arrayContaining(['binding.gyp', 'native/memguard.h', 'native/memory.cc', 'native/key.cc', 'native/aead.cc']));
    expect(files.filter((f) => /faults/.test(f))).toEqual([]);
    // The only binaries are the release prebuilds (present after `--prebuildify`, as at publishing).
    const prebuild = /^prebuilds\/linux-[a-z0-9]+\/@secure-memory\+memguard\.(glibc|musl)\.node$/;
    expect(files.filter((f) => /testing|native\/extra/.test(f) || (f.endsWith('.node') && !prebuild.test(f)))).toEqual([]);
  });
});
