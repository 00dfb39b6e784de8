/**
 * `describeConformance` for vitest: the contract suite and the bad-input table in process, one
 * test per case, and the guarantee probes from outside (once per call), one test per flag.
 * @module
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GUARANTEE_FLAGS, type SecretFactory, loadBackend } from '@secure-memory/core';
import { BAD_INPUTS, CONTRACT_CHECKS, runBadInput } from './contract.js';
import { type ConformanceTarget, assertTarget } from './conformance.js';
import { type GuaranteeVerdict, judge } from './judge.js';
import { observe } from './observe.js';

/** Options of {@link describeConformance}. */
export interface DescribeConformanceOptions extends ConformanceTarget {
  /** The title of the suite. */
  name: string;
  /** Skip the out-of-process guarantee probes (for platforms without /proc or gcore). */
  skipGuarantees?: boolean;
}

/**
 * Declares the conformance suite of one backend. Claimed guarantees must be `verified`; unclaimed
 * ones are probed and must come out `holds`, `absent` or `skipped`.
 * @example
 * ```ts
 * describeConformance({ name: 'mine', module: '/abs/path/to/my-backend.js' });
 * ```
 */
export function describeConformance(config: DescribeConformanceOptions): void {
  assertTarget(config);
  describe(`conformance: ${config.name}`, () => {
    let factory: SecretFactory;
    beforeAll(async () => {
      factory = await loadBackend(config.module, config.options);
    });

    describe('contract', () => {
      for (const check of CONTRACT_CHECKS) it(check.name, () => check.run(factory));
    });

    describe(`bad input (${BAD_INPUTS.length} cases)`, () => {
      for (const testCase of BAD_INPUTS) it(`${testCase.name} -> ${testCase.code}`, () => runBadInput(factory, testCase));
    });

    describe.skipIf(config.skipGuarantees === true || process.platform !== 'linux')('guarantees, observed from outside', () => {
      let verdicts: Record<string, GuaranteeVerdict>;
      beforeAll(async () => {
        verdicts = judge(await observe(config.module, config.options));
      }, 300_000);
      for (const flag of GUARANTEE_FLAGS) {
        it(flag, () => {
          const v = verdicts[flag] as GuaranteeVerdict;
          if (v.claimed) expect(v.status, `${flag} is claimed: ${v.detail}`).toBe('verified');
          else expect(['holds', 'absent', 'skipped'], `${flag} is not claimed: ${v.detail}`).toContain(v.status);
        });
      }
    });
  });
}
