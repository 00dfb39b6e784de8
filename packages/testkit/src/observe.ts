/**
 * The probes' observations of one backend: one holder child (memory scans idle, during access and
 * after close and GC; one core dump during access; the mappings of the regions it points at) and
 * one short-lived child per fault probe, each run through a `ChildSession` (`session.ts`). The
 * records here are JSON-friendly; `judge.ts` turns them into verdicts.
 * @module
 */
import type { Guarantees } from '@secure-memory/core';
import type { RegionLocation } from '@secure-memory/core/backend';
import { HELD, WORKER_HELD } from './protocol.js';
import { scanCoreWindows } from './coredump.js';
import { type Mapping, findMapping, readMappings, scanProcess, tryReadRegion } from './proc.js';
import type { Encoding, WindowHit } from './search.js';
import { type ChildOutcome, ChildSession, ProbeFailure, runChild } from './session.js';

/** A phase of the holder's life in which it was observed. */
export type Phase = 'idle' | 'access' | 'closed';

/** A mapping, made JSON-friendly. */
export interface MappingRecord {
  range: string;
  perms: string;
  path: string;
  vmFlags: string[];
}

/** A copy found, made JSON-friendly. */
export interface HitRecord {
  /** Index of the secret: the held ones first, then the worker's. */
  secret: number;
  /** How the secret was made (see `HELD`). */
  label: string;
  encoding: Encoding;
  /** Plaintext bytes in the copy (at least 16). */
  bytes: number;
  address: string;
  /** The mapping holding the copy; null for a core hit outside every mapping seen. */
  mapping: MappingRecord | null;
}

/** What one phase's memory scan saw. */
interface PhaseScan {
  hits: HitRecord[];
  scannedBytes: number;
  /** Mappings with data that could not be read from outside (memfd_secret memory, for one). */
  unreadable: { mapping: MappingRecord; code: string }[];
}

/** The mapping of a region a backend pointed at, as seen in one phase. */
export interface RegionView {
  address: string;
  size: number;
  mapping: MappingRecord | null;
  /** The error code of an external read of the region, or null when it could be read. */
  readError: string | null;
}

/** The one core dump, taken during access. */
export type CoreRecord =
  | { available: true; hits: HitRecord[]; coreBytes: number; durationMs: number }
  | { available: false; reason: string; tooLarge: boolean };

/** Everything the probes saw of one backend with one set of options. */
export interface Observations {
  name: string;
  guarantees: Guarantees;
  /** The held secrets, in order. */
  held: { label: string; size: number }[];
  sizes: number[];
  /** The worker thread's secrets, searched for after it was terminated; `workerError` when it could not make them. */
  workerHeld: { label: string; size: number }[];
  workerError: string | null;
  scans: Record<Phase, PhaseScan>;
  core: CoreRecord;
  regions: Record<Phase, (RegionView | null)[]>;
  equals: { correct: boolean; sharedImplementation: boolean };
  keepView: ChildOutcome;
  keepAfterClose: ChildOutcome;
  transfer: ChildOutcome;
  guardAfter: ChildOutcome;
  guardBefore: ChildOutcome;
  canary: ChildOutcome;
}

export function mappingRecord(m: Mapping): MappingRecord {
  return { range: `${m.start.toString(16)}-${m.end.toString(16)}`, perms: m.perms, path: m.path, vmFlags: m.vmFlags };
}

/** A copy found, made JSON-friendly: `labels[hit.needle]` names it, `mapping` holds it (undefined: outside every mapping seen). */
export function hitRecord(hit: WindowHit, labels: readonly string[], mapping: Mapping | undefined): HitRecord {
  return {
    secret: hit.needle,
    label: labels[hit.needle] as string,
    encoding: hit.encoding,
    bytes: hit.bytes,
    address: `0x${hit.address.toString(16)}`,
    mapping: mapping === undefined ? null : mappingRecord(mapping),
  };
}

/** One `gcore` core dump of process `pid`, searched for the needles; hits placed in `mappings`. */
export function coreRecord(pid: number, needles: readonly Uint8Array[], labels: readonly string[], mappings: readonly Mapping[]): CoreRecord {
  const scan = scanCoreWindows(pid, needles, mappings);
  return scan.available
    ? { available: true, coreBytes: scan.coreBytes, durationMs: scan.durationMs, hits: scan.hits.map((h) => hitRecord(h, labels, findMapping(mappings, h.address))) }
    : { available: false, reason: scan.reason, tooLarge: scan.tooLarge === true };
}

function scanPhase(pid: number, needles: Buffer[], labels: string[]): PhaseScan & { mappings: Mapping[] } {
  const scan = scanProcess(pid, needles);
  return {
    hits: scan.hits.map((h) => hitRecord(h, labels, h.mapping)),
    scannedBytes: scan.scannedBytes,
    unreadable: scan.unreadable.map((u) => ({ mapping: mappingRecord(u.mapping), code: u.code })),
    mappings: scan.mappings,
  };
}

function viewRegions(pid: number, regions: (RegionLocation | null)[]): (RegionView | null)[] {
  const mappings = readMappings(pid);
  return regions.map((r) => {
    if (r === null) return null;
    const mapping = findMapping(mappings, r.address);
    return {
      address: `0x${r.address.toString(16)}`,
      size: r.size,
      mapping: mapping === undefined ? null : mappingRecord(mapping),
      readError: mapping === undefined ? 'UNMAPPED' : (tryReadRegion(pid, r.address, r.size) ?? null),
    };
  });
}

/** Progress callback: a short line per step. */
export type Progress = (message: string) => void;

/**
 * Observes a backend from outside: one holder child (memory scans idle, during access and after
 * close and GC, for every 16-byte window of each plaintext, raw and encoded; one core dump during
 * access; its regions' mappings), and one short-lived child per fault probe. Probes run once per
 * backend and options, not once per test.
 * @throws {ProbeFailure} naming the step that failed (the holder could not start, died, or timed out).
 */
export async function observe(module: string, options: Record<string, unknown> | undefined, progress: Progress = () => {}): Promise<Observations> {
  const base = { module, ...(options === undefined ? {} : { options }) };
  let step = 'starting a child that holds secrets';
  const say = (s: string): void => {
    step = s;
    progress(s);
  };
  const holder = new ChildSession({ ...base, mode: 'hold' });
  let held: Omit<Observations, 'keepView' | 'keepAfterClose' | 'transfer' | 'guardAfter' | 'guardBefore' | 'canary'>;
  try {
    say('starting a child that holds secrets');
    const ready = await holder.waitFor('ready');
    const labels = HELD.map((h) => h.label);
    const needles = await holder.waitFrames(labels);
    needles.forEach((n, i) => {
      if (n.byteLength !== HELD[i]?.size) throw new Error(`the child sent ${n.byteLength} bytes for "${labels[i]}", not ${HELD[i]?.size}`);
    });
    const regions = (ready.regions as ({ address: string; size: number } | null)[]).map((r) =>
      r === null ? null : { address: BigInt(r.address), size: r.size },
    );
    const pid = holder.pid;

    say('scanning memory while idle');
    const idle = scanPhase(pid, needles, labels);
    const idleRegions = viewRegions(pid, regions);

    await holder.command('access', 'accessing');
    say('scanning memory during access');
    const access = scanPhase(pid, needles, labels);
    const accessRegions = viewRegions(pid, regions);
    say('taking a core dump during access');
    const core = coreRecord(pid, needles, labels, access.mappings);
    say('ending the access');
    await holder.command('release', 'released');

    say('closing every secret, terminating the worker thread, collecting garbage');
    const closedEvent = await holder.command('close', 'closed');
    const workerError = (closedEvent.worker as string | null | undefined) ?? null;
    const workerLabels = workerError === null ? WORKER_HELD.map((h) => h.label) : [];
    const workerNeedles = await holder.waitFrames(workerLabels);
    say('scanning memory after close and GC');
    const closed = scanPhase(pid, [...needles, ...workerNeedles], [...labels, ...workerLabels]);
    const closedRegions = viewRegions(pid, regions);
    const strip = ({ mappings: _m, ...rest }: PhaseScan & { mappings: Mapping[] }): PhaseScan => rest;
    held = {
      name: ready.name as string,
      guarantees: ready.guarantees as Guarantees,
      held: HELD.map((h) => ({ ...h })),
      sizes: HELD.map((h) => h.size),
      workerHeld: workerError === null ? WORKER_HELD.map((h) => ({ ...h })) : [],
      workerError,
      scans: { idle: strip(idle), access: strip(access), closed: strip(closed) },
      core,
      regions: { idle: idleRegions, access: accessRegions, closed: closedRegions },
      equals: ready.equals as Observations['equals'],
    };
  } catch (error) {
    throw error instanceof ProbeFailure ? error : new ProbeFailure(step, (error as Error).message ?? String(error));
  } finally {
    holder.wipeFrames();
    holder.kill();
  }
  await holder.exited;
  progress('fault probes: kept views, a transferred view, guard pages, canary');
  const [keepView, keepAfterClose, transfer, guardAfter, guardBefore, canary] = (await Promise.all(
    (['keep-view', 'keep-after-close', 'transfer', 'guard-after', 'guard-before', 'canary'] as const).map((mode) => runChild({ ...base, mode })),
  )) as [ChildOutcome, ChildOutcome, ChildOutcome, ChildOutcome, ChildOutcome, ChildOutcome];
  return { ...held, keepView, keepAfterClose, transfer, guardAfter, guardBefore, canary };
}
