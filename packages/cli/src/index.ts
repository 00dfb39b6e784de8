/**
 * `@secure-memory/cli` as a library: what the `secure-memory` command prints, as data.
 * @module
 */
export { runDoctor, formatDoctor, type DoctorItem } from './doctor.js';
export { DEFAULT_TARGETS, availableTargets, runMatrix, formatMatrix, recommend, type MatrixTarget, type MissingTarget, type Recommendation } from './matrix.js';
export { runBench, formatBench, FULL_PLAN, SHORT_PLAN, type BenchPlan, type BenchReport, type BenchResult, type BenchFloor, type CapacityResult } from './bench.js';
export { runFuzzTargets, formatFuzz, type FuzzPlan, type FuzzTargetReport } from './fuzz.js';
export { runSoak, formatSoak, judgeSoak, FULL_SOAK, SHORT_SOAK, SOAK_TOLERANCES, type SoakPlan, type SoakReport, type SoakCheck, type SoakResultEvent } from './soak.js';
export type { SoakSample } from './soak-child.js';
