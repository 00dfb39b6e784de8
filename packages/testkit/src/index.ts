/**
 * `@secure-memory/testkit`: the conformance suite for secure-memory backends and its
 * out-of-process probes. `describeConformance` (vitest) lives in `@secure-memory/testkit/vitest`;
 * the plain-memory control backend in `@secure-memory/testkit/control`.
 * @module
 */
export { runConformance, buildReport, type ConformanceReport, type ConformanceTarget } from './conformance.js';
export { CONTRACT_CHECKS, BAD_INPUTS, runContract, runBadInput, expectCode, type ContractCheck, type BadInputCase, type CheckResult } from './contract.js';
export { judge, type GuaranteeStatus, type GuaranteeVerdict } from './judge.js';
export { observe, runChild, type Observations, type Progress } from './observe.js';
export { scanMemory, readMappings, findMapping, tryReadRegion, type Mapping, type MemoryScan, type Hit } from './proc.js';
export { scanCoreDump, coreDumpUnavailable, countInFile, type CoreScan } from './coredump.js';
export { UNPRIVILEGED_PREFIX, unprivileged } from './unprivileged.js';
export { runFuzz, patternBytes, CONFORMANCE_FUZZ_SEED, CONFORMANCE_FUZZ_RUNS, type FuzzOptions, type FuzzResult, type FuzzFailure } from './fuzz.js';
export { runWorkload, createRng, expectedDigest, type WorkloadOptions, type WorkloadResult } from './workload.js';
export { runWorkers, runAsyncInterleaving, WORKER_SCRIPT, type WorkersOptions, type WorkersResult, type ThreadReport, type InterleavingOptions, type InterleavingResult } from './concurrency.js';
