// Behaviour that needs its own process: limits as an unprivileged user, faults, process-wide changes.
// The fixtures import the built package (dist/): build first.
import { beforeAll, describe, expect, it } from 'vitest';
import { unprivileged } from '@secure-memory/testkit';
import type { MemlockReport as ScenarioReport } from '../../testkit/test/memlock.js';
import { PAGE, assertBuilt, hasSetpriv, isRoot, output, runFixture } from './helpers.js';

beforeAll(assertBuilt);

const EIGHT_MIB = 8 * 1024 * 1024;
const asNobody = unprivileged([], { memlock: EIGHT_MIB });

interface MemlockReport extends ScenarioReport {
  mode: string;
  lockedInRam: boolean;
}

describe.skipIf(!isRoot || !hasSetpriv)('RLIMIT_MEMLOCK of 8 MiB, as nobody', () => {
  it.each([
    ['off', 'anonymous', 'mlock'],
    ['require', 'secret-memory', 'mmap'],
  ])("secretMemory '%s': 32-byte secrets until ERR_MEMLOCK_LIMIT; the process and its secrets survive", (secretMemory, mode, syscall) => {
    const report = output<MemlockReport>(runFixture('memlock.mjs', [secretMemory, 'require'], asNobody));
    expect(report.uid).toBe(65534);
    expect(report.mode).toBe(mode);
    // One page per 32-byte secret: the limit allows exactly limit / page secrets.
    expect(report.made).toBe(EIGHT_MIB / PAGE);
    expect(report).toMatchObject({ code: 'ERR_MEMLOCK_LIMIT', requested: PAGE, limit: EIGHT_MIB, syscall });
    expect(report.statsAtLimit).toMatchObject({ lockedBytes: EIGHT_MIB, mappings: report.made, inUse: report.made });
    // Every earlier secret reads back what it was given.
    expect(report.intact).toBe(report.made);
    // Repeated refusals (16 MiB each) leave no mapping and no descriptor behind.
    expect(report.repeatedCodes).toEqual(['ERR_MEMLOCK_LIMIT']);
    expect(report.vmGrowth).toBeLessThan(16 * 1024 * 1024);
    expect(report.fdGrowth).toBe(0);
    // Closing one secret makes room for a new one.
    expect(report.replacement).toBe(32);
  });

  it("lock 'best-effort' goes on unlocked past the limit and says so", () => {
    const report = output<MemlockReport>(runFixture('memlock.mjs', ['auto', 'best-effort', '3000'], asNobody));
    expect(report).toMatchObject({ mode: 'anonymous', lockedInRam: false, made: 3000, intact: 3000, replacement: 32 });
    expect(report.code).toBeUndefined();
    expect(report.statsAtLimit).toMatchObject({ lockedBytes: EIGHT_MIB, mappings: 3000, unlockedMappings: 3000 - EIGHT_MIB / PAGE });
    expect(report.repeatedCodes).toEqual(['none']);
  });
});

interface MapLimitReport {
  mode: string;
  max: number;
  reserve: number;
  made: number;
  code?: string;
  requested?: number;
  limit?: number;
  intact: number;
  heapWorks: boolean;
  replacement: number | string;
  stats: Record<string, number>;
}

// Root, so that RLIMIT_MEMLOCK does not stop it first.
describe.skipIf(!isRoot)('vm.max_map_count', () => {
  it.each(['off', 'require'])(
    "secretMemory '%s': secrets stop with ERR_MAP_LIMIT while a reserve is left, and the process keeps working",
    (secretMemory) => {
      const report = output<MapLimitReport>(runFixture('maplimit.mjs', [secretMemory]));
      expect(report.made).toBeGreaterThan(1000); // the fixture left about 2000 mappings
      expect(report).toMatchObject({ code: 'ERR_MAP_LIMIT', limit: report.max - report.reserve });
      expect(report.requested).toBeGreaterThan(report.limit as number);
      expect(report.intact).toBe(report.made);
      expect(report.heapWorks).toBe(true);
      expect(report.replacement).toBe(32);
      expect(report.stats).toMatchObject({ inUse: 0, mappings: 0, lockedBytes: 0 });
    },
  );
});

describe.each(['off', 'require'])("views, secretMemory '%s'", (secretMemory) => {
  it('a view read during its access works (the control)', () => {
    const result = runFixture('view.mjs', [secretMemory, 'inside']);
    expect(result.signal).toBeNull();
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('survived');
  });

  it('a view kept past its access kills the process by SIGSEGV (PROT_NONE when idle)', () => {
    const result = runFixture('view.mjs', [secretMemory, 'kept']);
    expect(result.stdout).toContain('touching');
    expect(result.stdout).not.toContain('survived');
    expect(result.signal).toBe('SIGSEGV');
  });

  it('a write through the view kills the process by SIGSEGV (PROT_READ during access)', () => {
    const result = runFixture('view.mjs', [secretMemory, 'write']);
    expect(result.stdout).toContain('touching');
    expect(result.stdout).not.toContain('survived');
    expect(result.signal).toBe('SIGSEGV');
  });
});

interface HardenReport {
  before: { coreSoft: string; coreHard: string; dumpable: number };
  after: { coreSoft: string; coreHard: string; dumpable: number };
  code?: string;
}

describe.skipIf(!isRoot)('hardenProcess, in a child with core dumps enabled', () => {
  const withCores = ['prlimit', '--core=1048576:unlimited', '--'];

  it('importing the package changes nothing; hardenProcess() sets RLIMIT_CORE to 0 and clears dumpable', () => {
    const report = output<HardenReport>(runFixture('harden.mjs', [], withCores));
    expect(report.before).toEqual({ coreSoft: '1048576', coreHard: 'unlimited', dumpable: 1 });
    expect(report.after).toEqual({ coreSoft: '0', coreHard: '0', dumpable: 0 });
    expect(report.code).toBeUndefined();
  });

  it('leaves alone what the options keep', () => {
    const keepCores = output<HardenReport>(runFixture('harden.mjs', ['{"coreDumps":true}'], withCores));
    expect(keepCores.after).toEqual({ coreSoft: '1048576', coreHard: 'unlimited', dumpable: 0 });
    const keepDumpable = output<HardenReport>(runFixture('harden.mjs', ['{"dumpable":true}'], withCores));
    expect(keepDumpable.after).toEqual({ coreSoft: '0', coreHard: '0', dumpable: 1 });
  });

  it('a bad option changes nothing', () => {
    const report = output<HardenReport>(runFixture('harden.mjs', ['{"coreDumps":"no"}'], withCores));
    expect(report.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(report.after).toEqual(report.before);
  });
});
