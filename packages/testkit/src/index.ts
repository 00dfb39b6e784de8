/**
 * `@secure-memory/testkit`: the conformance suite for secure-memory backends and its
 * out-of-process probes. `describeConformance` (vitest) lives in `@secure-memory/testkit/vitest`;
 * the plain-memory control backend in `@secure-memory/testkit/control`.
 * @module
 */
export { runConformance, buildReport, describeTarget, type ConformanceReport, type ConformanceTarget, type ReliabilityCheck } from './conformance.js';
export { CONTRACT_CHECKS, runContract, type ContractCheck, type CheckResult } from './contract.js';
export { BAD_INPUTS, runBadInput, type BadInputCase } from './bad-input.js';
export { expectCode } from './expect-code.js';
export { judge, realUse, describeHits, type GuaranteeStatus, type GuaranteeVerdict, type RealUseResult } from './judge.js';
export { observe, type Observations, type Progress, type HitRecord } from './observe.js';
export { runChild, ProbeFailure } from './session.js';
export { sendEvent, sendError, readEvents, runChildScript, type ChildEvent, type ChildEnd } from './events.js';
export { PlaintextSearch, WINDOW, ENCODINGS, SEARCH_DESCRIPTION, type Encoding, type WindowHit } from './search.js';
export { loadTarget } from './load.js';
export { scanMemory, scanProcess, readMappings, findMapping, isSecretMemory, tryReadRegion, type Mapping, type MemoryScan, type Hit, type WindowScan, type WindowScanHit } from './proc.js';
export { scanCoreDump, scanCoreWindows, searchCore, coreSize, coreDumpUnavailable, countInFile, CORE_SIZE_LIMIT, type CoreScan, type WindowCoreScan } from './coredump.js';
export { UNPRIVILEGED_PREFIX, unprivileged } from './unprivileged.js';
export { runFuzz, CONFORMANCE_FUZZ_SEED, CONFORMANCE_FUZZ_RUNS, type FuzzOptions, type FuzzResult, type FuzzFailure } from './fuzz.js';
export { patternBytes, fillPattern } from './pattern.js';
export { runWorkload, createRng, expectedDigest, type WorkloadOptions, type WorkloadResult } from './workload.js';
export { runWorkers, runAsyncInterleaving, WORKER_SCRIPT, type WorkersOptions, type WorkersResult, type ThreadReport, type InterleavingOptions, type InterleavingResult } from './concurrency.js';
export { probeKeyUse, judgeKeyUse, isProtectedMapping, KEY_USE_WORKLOAD, KEY_USE_RECORDS, KEY_USE_SAMPLE_EVERY, type KeyUseTarget, type KeyUseReport, type KeyUseObservations, type KeyCounts } from './key-use.js';
export { KEY_KINDS, CRYPTO_MODULE, keyUseSampler, type KeyKind, type KeyUseContext, type KeyUseSampler, type KeyUseWorkload } from './key-use-workload.js';
