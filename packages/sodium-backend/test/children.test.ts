// Behaviour that crashes by design, or that needs a process of its own (limits, another user), runs
// in child processes that import the built package (dist/): build before running these tests.
import { describe, expect, it } from 'vitest';
import { type ChildResult, runFixture } from './helpers.ts';

/** The child died of SIGSEGV after printing `reached`, and never printed `beyond`. */
function expectSegfault(child: ChildResult, reached: string, beyond: string): void {
  expect(child.signal).toBe('SIGSEGV');
  expect(child.stdout).toContain(reached);
  expect(child.stdout).not.toContain(beyond);
}

describe('close wipes before it frees', () => {
  it('zeroes the data at once; raw sodium_free would leave it readable until libsodium unmaps it', () => {
    const child = runFixture('wipe');
    expect(child.status, child.stderr).toBe(0);
    expect(child.result).toEqual({
      // the control: sodium-native's sodium_free only detaches; the bytes stay in mapped memory
      rawLeftAfterFree: true,
      rawMappedAfterFree: true,
      beforeClose: true,
      // the backend: zero right after close(), while the pages are still mapped
      zeroAfterClose: true,
      mappedAfterClose: true,
      // and libsodium unmaps them on a later turn of the event loop
      mappedLater: false,
    });
  });
});

describe('views used outside their action', () => {
  it('fault with SIGSEGV when read while the secret is idle', () => {
    const child = runFixture('keep-view', ['read-idle']);
    expectSegfault(child, '"event":"kept","byteLength":32', '"event":"read"');
  });

  it('fault with SIGSEGV when written during an access (the pages are read-only)', () => {
    const child = runFixture('keep-view', ['write-during-access']);
    expectSegfault(child, '"event":"writing"', '"event":"wrote"');
  });

  it('after close keep their length and fault (SIGSEGV): never an empty key, never another secret', () => {
    const child = runFixture('keep-view', ['after-close']);
    expectSegfault(child, '"event":"kept","byteLength":32', '"event":"read"');
  });
});

describe('guard pages', () => {
  it.each([
    ['one byte past the end', 'after', '32'],
    ['one byte past the end of a 3000-byte secret', 'after', '3000'],
    ['the page before the data', 'before', '32'],
    ['the page before the data of a 3000-byte secret', 'before', '3000'],
    ['the page before the canary of a 4096-byte secret', 'before-canary', '4096'],
  ])('a native read of %s faults (SIGSEGV)', (_label, mode, size) => {
    const child = runFixture('guard', [mode, size]);
    expectSegfault(child, '"event":"touching"', 'survived');
  });

  it.each([
    ['the first data byte', 'inside', '32'],
    ['the last data byte', 'last', '32'],
    // documented: when size % page is 0 or above page - 16, the canary starts in the page before
    // the data's first page, so that page is readable during an access (the guard is one further)
    ['the page before the data of a 4096-byte secret (the canary page)', 'before', '4096'],
  ])('the same native read of %s succeeds', (_label, mode, size) => {
    const child = runFixture('guard', [mode, size]);
    expect(child.status, child.stderr).toBe(0);
    expect(child.result).toEqual({ event: 'survived' });
  });
});

describe('canary', () => {
  it('a write just before the data makes close() throw ERR_INTEGRITY; the process and other secrets live on', () => {
    const child = runFixture('canary', ['ours']);
    expect(child.status, child.stderr).toBe(0);
    expect(child.result).toMatchObject({
      code: 'ERR_INTEGRITY',
      closed: true,
      neighbourIntact: true,
      stats: { integrityFailures: 1, inUse: 0, lockedBytes: 0 },
    });
  });

  it('control: with raw sodium-native, libsodium finds it only in the deferred free, and raises SIGSEGV', () => {
    const child = runFixture('canary', ['raw']);
    expectSegfault(child, '"event":"freed"', 'survived');
  });

  it('control: with raw sodium-native, a process that exits right after sodium_free never learns of it', () => {
    const child = runFixture('canary', ['raw-exit']);
    expect(child.status).toBe(0);
    expect(child.signal).toBe(null);
  });
});

describe('limits', () => {
  it.skipIf(process.getuid?.() !== 0)('as root: 32-byte secrets until ERR_MAP_LIMIT; the process survives and every secret reads back', () => {
    const child = runFixture('map-limit');
    expect(child.status, child.stderr).toBe(0);
    const r = child.result as Record<string, number | string | boolean | null>;
    expect(r.code).toBe('ERR_MAP_LIMIT');
    expect(r.again).toBe('ERR_MAP_LIMIT');
    expect(r.allocated as number).toBeGreaterThan(1000);
    expect(r.intact).toBe(r.allocated);
    expect(r.requested as number).toBeGreaterThan(r.limit as number);
    // stopped before the kernel's limit, with a reserve left to the rest of the process
    expect(r.limit as number).toBeLessThan(r.max as number);
    // the map count seen at the last count (requested - 4) passes the ceiling only by what other code
    // (V8's heap) mapped since the count before: less than a quarter of the reserve
    expect((r.requested as number) - 4).toBeLessThan((r.limit as number) + 1023);
    expect((r.max as number) - (r.maps as number)).toBeGreaterThanOrEqual(1024);
    // after close, once the event loop turned, the mappings are back
    expect(r.recoveredOk).toBe(true);
    expect(r.mapsAfterClose as number).toBeLessThan(5000);
  });

  it.skipIf(process.getuid?.() !== 0)('as nobody: 32-byte secrets until ERR_MEMLOCK_LIMIT; the process survives and every secret reads back', () => {
    const child = runFixture('memlock', ['require'], { asNobody: true });
    expect(child.status, child.stderr).toBe(0);
    const r = child.result as Record<string, unknown>;
    expect(r.uid).toBe(65534);
    expect(r.code).toBe('ERR_MEMLOCK_LIMIT');
    expect(r.syscall).toBe('mlock');
    expect(r.requested).toBe(4096);
    expect(r.limit).toBe(r.rlimit);
    expect(r.intact).toBe(r.allocated);
    expect(r.allocated as number).toBeGreaterThan(100);
    // everything the factory says it locked is locked, and nothing was left unlocked
    expect(r.stats).toMatchObject({ lockedBytes: (r.allocated as number) * 4096, unlocked: 0 });
    expect(r.vmLck as number).toBeGreaterThanOrEqual((r.allocated as number) * 4096);
    // closing secrets gives the lock back at once
    expect(r.afterClose).toBe('ok');
  });

  it.skipIf(process.getuid?.() !== 0)("as nobody with lock 'best-effort': goes on unlocked past the limit, and does not claim lockedInRam", () => {
    const child = runFixture('memlock', ['best-effort'], { asNobody: true });
    expect(child.status, child.stderr).toBe(0);
    const r = child.result as Record<string, unknown> & { stats: { lockedBytes: number; unlocked: number } };
    expect(r.code).toBe(null);
    expect(r.lockedInRam).toBe(false);
    expect(r.intact).toBe(r.allocated);
    expect(r.stats.unlocked).toBeGreaterThan(0);
    expect(r.stats.lockedBytes + r.stats.unlocked * 4096).toBe((r.allocated as number) * 4096);
  });
});

describe('platform', () => {
  it.each(['darwin', 'win32'])('on %s, createFactory throws ERR_UNSUPPORTED_PLATFORM', (platform) => {
    const child = runFixture('platform', [platform]);
    expect(child.status, child.stderr).toBe(0);
    expect(child.result).toEqual({ code: 'ERR_UNSUPPORTED_PLATFORM' });
  });
});
