/**
 * `describeConformance` for vitest: the contract suite and the bad-input table in process, one
 * test per case; a fixed-seed model-based fuzz; the concurrency checks (worker threads, async
 * interleaving); and the guarantee probes from outside (once per call), one test per flag.
 * @module
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, GUARANTEE_FLAGS, type GuaranteeFlag, type SecretFactory, SecureMemoryTypeError } from '@secure-memory/core';
import { loadTarget } from './load.js';
import { BAD_INPUTS, runBadInput } from './bad-input.js';
import { CONTRACT_CHECKS } from './contract.js';
import { type ConformanceTarget, assertTarget } from './conformance.js';
import { runAsyncInterleaving, runWorkers } from './concurrency.js';
import { CONFORMANCE_FUZZ_RUNS, CONFORMANCE_FUZZ_SEED, runFuzz } from './fuzz.js';
import { type GuaranteeStatus, type GuaranteeVerdict, type RealUseResult, judge, realUse } from './judge.js';
import { observe } from './observe.js';
import { probeKeyUse } from './key-use.js';

/** Options of {@link describeConformance}. */
export interface DescribeConformanceOptions extends ConformanceTarget {
  /** The title of the suite. */
  name: string;
  /** Skip the out-of-process guarantee probes (for platforms without /proc or gcore). */
  skipGuarantees?: boolean;
  /** The fixed-seed fuzz (default seed 424242, 300 runs); `false` leaves it out. */
  fuzz?: false | { seed?: number; numRuns?: number };
  /** The worker-thread check (default 4 threads of 3000 operations); `false` leaves it out. */
  workers?: false | { threads?: number; operations?: number };
  /**
   * The exact status every flag must come out with, claimed or not (every flag named). Without it,
   * claimed flags must be `verified` and unclaimed ones may be `holds`, `absent` or `skipped`; with
   * it, a flag that moves (from `holds` to `absent`, say) fails its test.
   */
  expected?: Readonly<Record<GuaranteeFlag, GuaranteeStatus>>;
}

const STATUSES: readonly GuaranteeStatus[] = ['verified', 'violated', 'holds', 'absent', 'skipped'];

function assertExpected(expected: unknown): void {
  if (expected === undefined) return;
  const entries = typeof expected === 'object' && expected !== null ? Object.entries(expected) : [];
  const named = new Set(entries.map(([flag]) => flag));
  const complete = GUARANTEE_FLAGS.every((flag) => named.has(flag)) && named.size === GUARANTEE_FLAGS.length;
  if (!complete || !entries.every(([, status]) => STATUSES.includes(status as GuaranteeStatus))) {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `describeConformance: "expected" must give one of ${STATUSES.join(', ')} for each of ${GUARANTEE_FLAGS.join(', ')}`);
  }
}

/**
 * Declares the conformance suite of one backend. Claimed guarantees must be `verified`; unclaimed
 * ones are probed and must come out `holds`, `absent` or `skipped`, or exactly as `expected` says.
 * @example
 * ```ts
 * describeConformance({ name: 'mine', module: '/abs/path/to/my-backend.js' });
 * ```
 */
export function describeConformance(config: DescribeConformanceOptions): void {
  assertTarget(config);
  assertExpected(config.expected);
  describe(`conformance: ${config.name}`, () => {
    let factory: SecretFactory;
    beforeAll(async () => {
      factory = await loadTarget(config.module, config.options);
    });

    describe('contract', () => {
      for (const check of CONTRACT_CHECKS) it(check.name, () => check.run(factory));
    });

    describe(`bad input (${BAD_INPUTS.length} cases)`, () => {
      for (const testCase of BAD_INPUTS) it(`${testCase.name} -> ${testCase.code}`, () => runBadInput(factory, testCase));
    });

    const fuzz = config.fuzz === false ? undefined : { seed: CONFORMANCE_FUZZ_SEED, numRuns: CONFORMANCE_FUZZ_RUNS, ...config.fuzz };
    describe.skipIf(fuzz === undefined)('model-based fuzz', () => {
      const { seed, numRuns } = fuzz ?? { seed: 0, numRuns: 0 };
      it(`seed ${seed}, ${numRuns} command sequences against the model: bytes, closed flags and stats after every command`, async () => {
        const result = await runFuzz({ module: config.module, ...(config.options === undefined ? {} : { options: config.options }), seed, numRuns });
        console.log(`fuzz ${config.name}: seed ${seed}, ${result.numRuns} runs, ${result.commandsRun} commands, ${result.operations} operations`);
        if (!result.ok) expect.fail(result.failure?.text ?? 'the fuzz failed');
        expect(result.numRuns).toBe(numRuns);
      }, 900_000);
    });

    describe('concurrency', () => {
      const workers = config.workers === false ? undefined : { threads: 4, operations: 3000, ...config.workers };
      it.skipIf(workers === undefined)('worker threads each load the backend and use their own secrets, at once with this thread', async () => {
        const { threads, operations } = workers ?? { threads: 0, operations: 0 };
        const result = await runWorkers({ module: config.module, ...(config.options === undefined ? {} : { options: config.options }), workers: threads, operations, mainFactory: factory });
        expect(result.threads.filter((t) => !t.ok)).toEqual([]);
        expect(result.threads).toHaveLength(threads + 1);
      }, 900_000);

      it('hundreds of overlapping async accesses on a few secrets, closed while pending: each freed when its last access ends', async () => {
        const result = await runAsyncInterleaving(factory, { accesses: 600, secrets: 4, seed: 7 });
        expect(result.problems).toEqual([]);
        // The waits are turns of the event loop, not timers: for a seed the overlap is the same on a busy machine.
        expect(result.maxPending).toBeGreaterThanOrEqual(100);
        expect(result.closes).toBeGreaterThan(0);
        expect(result.refused).toBeGreaterThan(0);
      }, 900_000);
    });

    const keyUse = config.keyUse === undefined || config.keyUse === false ? undefined : config.keyUse === true ? {} : config.keyUse;
    describe.skipIf(keyUse === undefined || process.platform !== 'linux')('keys used in place (the key-use probe)', () => {
      it('after many seals, opens, wraps, unwraps, HMACs and derivations and GC, no window of any key outside protected memory, in an outside scan and a core dump', async (context) => {
        const report = await probeKeyUse({ module: config.module, ...(config.options === undefined ? {} : { options: config.options }), ...keyUse });
        // Skipped only when the workload cannot run here (@secure-memory/crypto is not installed), never on a verdict.
        if (report.status === 'skipped') context.skip(report.detail);
        expect(report.status, report.detail).toBe('verified');
      }, 900_000);
    });

    describe.skipIf(config.skipGuarantees === true || process.platform !== 'linux')('guarantees, observed from outside', () => {
      let verdicts: Record<string, GuaranteeVerdict>;
      let probes: RealUseResult[];
      beforeAll(async () => {
        const observations = await observe(config.module, config.options);
        verdicts = judge(observations);
        probes = realUse(observations);
      }, 900_000);
      it('real use: a view kept past close() never reads another secret', () => {
        for (const p of probes.filter((x) => x.required)) expect(p.passed, p.detail).not.toBe(false);
      });
      for (const flag of GUARANTEE_FLAGS) {
        it(flag, () => {
          const v = verdicts[flag] as GuaranteeVerdict;
          if (config.expected !== undefined) expect(v.status, `${flag} (${v.claimed ? 'claimed' : 'not claimed'}): ${v.detail}`).toBe(config.expected[flag]);
          if (v.claimed) expect(v.status, `${flag} is claimed: ${v.detail}`).toBe('verified');
          else expect(['holds', 'absent', 'skipped'], `${flag} is not claimed: ${v.detail}`).toContain(v.status);
        });
      }
    });
  });
}
