/**
 * The key-use probe: after many seals, opens, wraps, unwraps, HMACs and derivations with keys
 * (through `@secure-memory/crypto`, or a workload of the caller's), and after GC, no 16-byte window
 * of any of those keys may appear outside protected memory, in an outside scan of the process and
 * in its core dump. A child process runs the workload on the backend under test and writes each
 * key it reports to a pipe straight from the key's protected view; the parent scans the child's
 * memory from outside (`/proc/<pid>/mem`, every 16-byte window, raw and encoded, each copy
 * classified by its mapping's VmFlags), then takes one `gcore` core dump and searches it.
 * @module
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCode, SecureMemoryRangeError, SecureMemoryTypeError } from '@secure-memory/core';
import { describeType } from '@secure-memory/core/backend';
import { assertTarget, describeTarget } from './conformance.js';
import { describeHits } from './judge.js';
import { type HitRecord, type MappingRecord, type Progress, coreRecord, hitRecord, mappingRecord } from './observe.js';
import { type Mapping, isSecretMemory, scanProcess } from './proc.js';
import { ChildSession } from './session.js';
import { KEY_KINDS, type KeyKind } from './key-use-workload.js';

/** The default workload: the envelope SDK on `@secure-memory/crypto` (`dist/key-use-workload.js`). */
export const KEY_USE_WORKLOAD = new URL('../dist/key-use-workload.js', import.meta.url).href;
/** Records the default workload runs. */
export const KEY_USE_RECORDS = 1000;
/** Every this-many-th data key and derived key is searched for. */
export const KEY_USE_SAMPLE_EVERY = 50;

/** What to probe. */
export interface KeyUseTarget {
  /** The backend: a module specifier that the child process can import. */
  module: string;
  /** Passed to the module's `createFactory(options)`. */
  options?: Record<string, unknown>;
  /** A label for reports; defaults to the backend's name. */
  name?: string;
  /** Records the workload runs (default 1000). */
  records?: number;
  /**
   * The workload module (a package name, an absolute path or a file: URL) exporting
   * `run(context)`; default: the envelope SDK on `@secure-memory/crypto` ({@link KEY_USE_WORKLOAD}).
   */
  workload?: string;
  /** Take and search a core dump (default true). Without one the verdict says so. */
  core?: boolean;
}

/** Copies found, by kind of key. */
export type KeyCounts = Partial<Record<KeyKind, number>>;

/** What the probe saw, JSON-friendly; {@link judgeKeyUse} turns it into a verdict. */
export interface KeyUseObservations {
  /** The backend's own name. */
  backend: string;
  /** Why the workload could not run here (its optional dependency is missing), if so. */
  unavailable?: string;
  /** The keys searched for, by kind. */
  keys: KeyCounts;
  scannedBytes: number;
  /** Copies in locked memory left out of core dumps (`lo` and `dd`), or in memfd_secret memory. */
  protectedHits: HitRecord[];
  /** Copies anywhere else: the malloc heap, V8's heap, the stack, unlocked or dumped mappings. */
  unprotectedHits: HitRecord[];
  /** Mappings with data that could not be read from outside, other than memfd_secret memory. */
  unreadable: { mapping: MappingRecord; code: string }[];
  /** The core dump; `asked: false` when the caller turned it off. */
  core:
    | { available: true; coreBytes: number; durationMs: number; hits: HitRecord[] }
    | { available: false; asked: boolean; tooLarge: boolean; reason: string };
}

/** The verdict of the key-use probe. */
export interface KeyUseReport {
  /** A label for this backend and options. */
  name: string;
  backend: string;
  module: string;
  options: Record<string, unknown>;
  /** The module and its options, as one line. */
  target: string;
  workload: string;
  records: number;
  /**
   * `verified`: keys were seen in protected memory and nowhere else, and not in the core dump;
   * `violated`: a copy outside protected memory or in the core, or nothing could be observed;
   * `skipped`: the workload cannot run here (`@secure-memory/crypto` missing, or not Linux).
   */
  status: 'verified' | 'violated' | 'skipped';
  detail: string;
  /** The keys searched for, by kind. */
  keys: KeyCounts;
  /** Copies in protected memory and outside it, by kind of key. */
  protectedCopies: KeyCounts;
  unprotectedCopies: KeyCounts;
  /** Copies in the core dump, by kind; null when no core was taken. */
  coreCopies: KeyCounts | null;
  /** The first copies found outside protected memory or in the core, with their mappings. */
  where: HitRecord[];
  scannedBytes: number;
  coreBytes: number;
  /** The step that could not run, and why (the child failed or died). */
  failure?: { step: string; reason: string };
  durationMs: number;
  node: string;
}

function count(hits: readonly HitRecord[]): KeyCounts {
  const counts: KeyCounts = {};
  for (const h of hits) counts[h.label as KeyKind] = (counts[h.label as KeyKind] ?? 0) + 1;
  return counts;
}

const total = (counts: KeyCounts): number => Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
const list = (counts: KeyCounts): string => KEY_KINDS.filter((k) => counts[k] !== undefined).map((k) => `${k} ${counts[k]}`).join(', ');

/** Locked and left out of core dumps, or memfd_secret memory. */
export function isProtectedMapping(m: Pick<Mapping, 'path' | 'vmFlags'>): boolean {
  return isSecretMemory(m as Mapping) || (m.vmFlags.includes('lo') && m.vmFlags.includes('dd'));
}

/**
 * Judges what the probe saw. `verified` needs a positive observation: the scan found the keys in
 * protected memory (the aead states the workload keeps), so it can see them where they are.
 */
export function judgeKeyUse(o: KeyUseObservations): { status: KeyUseReport['status']; detail: string } {
  if (o.unavailable !== undefined) return { status: 'skipped', detail: `not run: ${o.unavailable}` };
  const searched = total(o.keys);
  if (searched === 0) return { status: 'violated', detail: 'cannot be observed: the workload reported no key to search for' };
  const problems: string[] = [];
  if (o.unprotectedHits.length > 0) problems.push(`outside protected memory after GC, ${describeHits(o.unprotectedHits)}`);
  if (o.core.available && o.core.hits.length > 0) problems.push(`in the core dump (${(o.core.coreBytes / 2 ** 20).toFixed(0)} MiB), ${describeHits(o.core.hits)}`);
  if (problems.length > 0) return { status: 'violated', detail: problems.join('; ') };
  if (o.unreadable.length > 0) {
    return { status: 'violated', detail: `cannot be observed: ${o.unreadable.length} mapping(s) with data could not be read (${o.unreadable.map((u) => `${u.mapping.range} ${u.mapping.path || '[anon]'}: ${u.code}`).join('; ')}): a copy there cannot be ruled out` };
  }
  if (o.protectedHits.length === 0) {
    return { status: 'violated', detail: `cannot be observed: no copy of the ${searched} keys was found anywhere, not even in protected memory, so the scan cannot tell absence from invisibility` };
  }
  if (!o.core.available && o.core.asked && !o.core.tooLarge) return { status: 'violated', detail: `cannot be observed: no core dump could be taken: ${o.core.reason}` };
  const core = o.core.available ? `gcore (${(o.core.coreBytes / 2 ** 20).toFixed(0)} MiB): 0 copies` : o.core.asked ? o.core.reason : 'no core dump taken (core: false)';
  return {
    status: 'verified',
    detail: `0 copies of ${searched} keys (${list(o.keys)}) outside protected memory after GC in ${(o.scannedBytes / 2 ** 20).toFixed(0)} MiB; ${o.protectedHits.length} copies in locked, undumped memory (${list(count(o.protectedHits))}); ${core}`,
  };
}

/**
 * Validates the key-use options of a target (`records`, `workload`, `core`).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE`; {RangeError} `ERR_OUT_OF_RANGE` for records below 1 or fractional.
 */
export function assertKeyUseOptions(t: Pick<KeyUseTarget, 'records' | 'workload' | 'core'>): void {
  if (t.records !== undefined && typeof t.records !== 'number') throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "records" option must be a number. Received ${describeType(t.records)}`);
  if (t.records !== undefined && (!Number.isSafeInteger(t.records) || t.records < 1)) {
    throw new SecureMemoryRangeError(ErrorCode.OUT_OF_RANGE, `The "records" option must be a whole number of at least 1. Received ${String(t.records)}`);
  }
  if (t.workload !== undefined && (typeof t.workload !== 'string' || t.workload === '')) {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "workload" option must be a non-empty module specifier. Received ${describeType(t.workload)}`);
  }
  if (t.core !== undefined && typeof t.core !== 'boolean') throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "core" option must be a boolean. Received ${describeType(t.core)}`);
}

function assertKeyUseTarget(target: unknown): asserts target is KeyUseTarget {
  assertTarget(target);
  assertKeyUseOptions(target as KeyUseTarget);
}

/** A module specifier the child can import, whatever its working directory. */
function workloadSpecifier(workload: string): string {
  if (workload.startsWith('file:')) return workload;
  if (isAbsolute(workload) || workload.startsWith('./') || workload.startsWith('../')) return pathToFileURL(resolve(workload)).href;
  return workload;
}

/**
 * Runs the key-use probe on one backend: one child process and one core dump. Always resolves to a
 * report (`status: 'violated'` with `failure` when the child fails or dies); only bad arguments throw.
 * Linux only (elsewhere `skipped`); needs ptrace rights over the child and `gcore` from gdb.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad target.
 * @example
 * ```ts
 * const report = await probeKeyUse({ module: '@secure-memory/memguard', options: { mode: 'enclave' } });
 * if (report.status !== 'verified') console.error(report.detail);
 * ```
 */
export async function probeKeyUse(target: KeyUseTarget, progress: Progress = () => {}): Promise<KeyUseReport> {
  assertKeyUseTarget(target);
  if (typeof progress !== 'function') throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "progress" argument must be a function. Received ${describeType(progress)}`);
  const started = Date.now();
  const records = target.records ?? KEY_USE_RECORDS;
  const workload = workloadSpecifier(target.workload ?? KEY_USE_WORKLOAD);
  const base = {
    name: target.name ?? '',
    module: target.module,
    options: target.options ?? {},
    target: describeTarget(target),
    workload,
    records,
    node: process.version,
  };
  const empty = { keys: {}, protectedCopies: {}, unprotectedCopies: {}, coreCopies: null, where: [], scannedBytes: 0, coreBytes: 0 };
  if (process.platform !== 'linux') {
    return { ...base, name: base.name || target.module, backend: 'unknown', status: 'skipped', detail: `not run: the probe reads /proc (Linux only), this is ${process.platform}`, ...empty, durationMs: Date.now() - started };
  }
  let step = 'running the workload in a child process';
  const say = (s: string): void => {
    step = s;
    try {
      progress(s);
    } catch {
      // A progress callback that throws does not stop the probe.
    }
  };
  say(step);
  const session = new ChildSession({
    module: target.module,
    ...(target.options === undefined ? {} : { options: target.options }),
    mode: 'key-use',
    keyUse: { workload, records, sampleEvery: KEY_USE_SAMPLE_EVERY },
  });
  let observations: KeyUseObservations;
  try {
    const ready = await session.waitFor('ready');
    const labels = ready.keys as string[];
    const kinds = labels.map((l) => l.slice(0, l.indexOf('#')) as KeyKind);
    const keys: KeyCounts = {};
    for (const kind of kinds) keys[kind] = (keys[kind] ?? 0) + 1;
    if (ready.unavailable !== undefined || labels.length === 0) {
      observations = { backend: String(ready.name), ...(ready.unavailable === undefined ? {} : { unavailable: String(ready.unavailable) }), keys, scannedBytes: 0, protectedHits: [], unprotectedHits: [], unreadable: [], core: { available: false, asked: false, tooLarge: false, reason: 'not run' } };
    } else {
      const needles = await session.waitFrames(labels);
      const pid = session.pid;
      say(`scanning the child's memory for every 16-byte window of ${labels.length} keys`);
      const scan = scanProcess(pid, needles);
      const hits: HitRecord[] = scan.hits.map((h) => hitRecord(h, kinds, h.mapping));
      const isProtected = (h: HitRecord): boolean => h.mapping !== null && isProtectedMapping(h.mapping);
      let core: KeyUseObservations['core'] = { available: false, asked: false, tooLarge: false, reason: 'no core dump taken (core: false)' };
      if (target.core !== false) {
        say('taking a core dump and searching it');
        const c = coreRecord(pid, needles, kinds, scan.mappings);
        core = c.available ? c : { ...c, asked: true };
      }
      observations = {
        backend: String(ready.name),
        keys,
        scannedBytes: scan.scannedBytes,
        protectedHits: hits.filter(isProtected),
        unprotectedHits: hits.filter((h) => !isProtected(h)),
        unreadable: scan.unreadable.filter((u) => !isSecretMemory(u.mapping)).map((u) => ({ mapping: mappingRecord(u.mapping), code: u.code })),
        core,
      };
    }
  } catch (error) {
    const failure = { step, reason: String((error as Error).message ?? error) };
    session.wipeFrames();
    session.kill();
    await session.exited;
    return { ...base, name: base.name || target.module, backend: 'unknown', status: 'violated', detail: `cannot be observed: ${failure.step} failed: ${failure.reason}`, ...empty, failure, durationMs: Date.now() - started };
  }
  session.wipeFrames();
  session.kill();
  await session.exited;
  const verdict = judgeKeyUse(observations);
  const coreHits = observations.core.available ? observations.core.hits : [];
  return {
    ...base,
    name: base.name || observations.backend,
    backend: observations.backend,
    ...verdict,
    keys: observations.keys,
    protectedCopies: count(observations.protectedHits),
    unprotectedCopies: count(observations.unprotectedHits),
    coreCopies: observations.core.available ? count(coreHits) : null,
    where: [...observations.unprotectedHits, ...coreHits].slice(0, 20),
    scannedBytes: observations.scannedBytes,
    coreBytes: observations.core.available ? observations.core.coreBytes : 0,
    durationMs: Date.now() - started,
  };
}
