/**
 * `@secure-memory/cli` as a library: what the `secure-memory` command prints, as data.
 * @module
 */
export { runDoctor, formatDoctor, type DoctorItem } from './doctor.js';
export { DEFAULT_TARGETS, availableTargets, runMatrix, formatMatrix, recommend, type MatrixTarget, type MissingTarget, type Recommendation } from './matrix.js';
export { runBench, formatBench, FULL_PLAN, SHORT_PLAN, type BenchPlan, type BenchReport, type BenchResult, type CapacityResult, type FloorKind } from './bench.js';
