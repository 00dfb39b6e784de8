/**
 * The parent side of the out-of-process probes: it starts child processes that hold secrets, and
 * observes them from outside (memory scans, core dumps, smaps) or watches them die.
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Guarantees } from '@secure-memory/core';
import type { RegionLocation } from '@secure-memory/core/backend';
import { type ChildConfig, HELD, WORKER_HELD, parseFrames } from './protocol.js';
import { scanCoreWindows } from './coredump.js';
import { type Mapping, findMapping, readMappings, scanProcess, tryReadRegion } from './proc.js';
import type { Encoding } from './search.js';

/** The compiled child script; the same path from src/ (tests) and dist/. */
const CHILD_SCRIPT = fileURLToPath(new URL('../dist/child.js', import.meta.url));

type ChildEvent = { event: string } & Record<string, unknown>;

/** How a child process ended, with every event it reported. */
export interface ChildOutcome {
  events: ChildEvent[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** Killed by the time limit. */
  timedOut?: boolean;
}

/** How long a probe child may live; the holder, which is scanned and dumped, and the reliability child get longer. */
const CHILD_TIMEOUT_MS: Record<ChildConfig['mode'], number> = {
  hold: 300_000,
  reliability: 600_000,
  contract: 120_000,
  'keep-view': 120_000,
  'keep-after-close': 120_000,
  transfer: 120_000,
  'guard-after': 120_000,
  'guard-before': 120_000,
  canary: 120_000,
  'key-use': 900_000,
};

/** A step of the probes that failed, and why; `runConformance` turns it into the report's `failure`. */
export class ProbeFailure extends Error {
  readonly code = 'ERR_PROBE_FAILED';
  constructor(readonly step: string, readonly reason: string) {
    super(`${step}: ${reason}`);
    this.name = 'ProbeFailure';
  }
}

/** A running child process, driven by commands and awaited by event name. */
export class ChildSession {
  readonly #child;
  readonly #events: ChildEvent[] = [];
  readonly #waiters: { name: string; resolve: (e: ChildEvent) => void; reject: (e: Error) => void }[] = [];
  #stderr = '';
  #timedOut = false;
  readonly #frames = new Map<string, Buffer>();
  readonly exited: Promise<ChildOutcome>;

  constructor(config: ChildConfig) {
    // The holder collects garbage before its last scan; the flag is not given to others (worker threads refuse it in execArgv).
    this.#child = spawn(process.execPath, [...(config.mode === 'hold' || config.mode === 'key-use' ? ['--expose-gc'] : []), CHILD_SCRIPT, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    const limit = CHILD_TIMEOUT_MS[config.mode];
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.#child.kill('SIGKILL');
    }, limit);
    // Nothing thrown in these handlers: a child that writes garbage or dies early is reported, never a crash of this process.
    this.#child.on('error', (error) => {
      this.#stderr += `\nspawning the child failed: ${error.message}`;
    });
    this.#child.stdin.on('error', () => {});
    let pending = '';
    this.#child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        let event: ChildEvent;
        try {
          event = JSON.parse(line) as ChildEvent;
        } catch {
          this.#stderr = `${this.#stderr}\nunparsable line on stdout: ${line.slice(0, 200)}`.slice(-4000);
          continue;
        }
        this.#push(event);
      }
    });
    this.#child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    const fd3 = this.#child.stdio[3] as NodeJS.ReadableStream;
    let rest = Buffer.alloc(0);
    fd3.on('data', (b: Buffer) => {
      const parsed = parseFrames(Buffer.concat([rest, b]));
      for (const [label, bytes] of parsed.frames) this.#frames.set(label, Buffer.from(bytes));
      rest.fill(0);
      rest = Buffer.from(parsed.rest);
      parsed.rest.fill(0);
      b.fill(0);
    });
    fd3.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.#child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const outcome = { events: this.#events, code, signal, stderr: this.#stderr, timedOut: this.#timedOut };
        const why = this.#timedOut ? `the child was killed after ${limit / 1000} s (its time limit)` : `the child ended (code ${code}, signal ${signal})`;
        for (const w of this.#waiters.splice(0)) w.reject(new Error(`${why} before "${w.name}": ${this.#describeFailure()}`));
        resolve(outcome);
      });
    });
  }

  /** Waits until the child has sent the plaintext of each label (fd 3 and stdout are separate pipes, so events may come first). */
  async waitFrames(labels: readonly string[]): Promise<Buffer[]> {
    const deadline = Date.now() + 30_000;
    while (labels.some((l) => !this.#frames.has(l))) {
      if (Date.now() > deadline || this.#child.exitCode !== null || this.#child.signalCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.frames(labels);
  }

  /** The plaintexts the child sent, by label; the caller wipes them. */
  frames(labels: readonly string[]): Buffer[] {
    return labels.map((label) => {
      const frame = this.#frames.get(label);
      if (frame === undefined) throw new Error(`the child sent no plaintext for "${label}"`);
      return frame;
    });
  }

  wipeFrames(): void {
    for (const frame of this.#frames.values()) frame.fill(0);
    this.#frames.clear();
  }

  get pid(): number {
    return this.#child.pid as number;
  }

  #describeFailure(): string {
    const error = this.#events.find((e) => e.event === 'error');
    return error !== undefined ? `${String(error.code)}: ${String(error.message)}` : this.#stderr.trim().split('\n').slice(-3).join(' | ');
  }

  #push(event: ChildEvent): void {
    this.#events.push(event);
    const index = this.#waiters.findIndex((w) => w.name === event.event);
    if (index !== -1) this.#waiters.splice(index, 1)[0]?.resolve(event);
    if (event.event === 'error') {
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`the child failed: ${this.#describeFailure()}`));
    }
  }

  waitFor(name: string): Promise<ChildEvent> {
    const seen = this.#events.find((e) => e.event === name);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => this.#waiters.push({ name, resolve, reject }));
  }

  async command(line: string, reply: string): Promise<ChildEvent> {
    this.#child.stdin.write(`${line}\n`);
    return this.waitFor(reply);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

/** Runs a child to its end and returns how it ended. */
export async function runChild(config: ChildConfig): Promise<ChildOutcome> {
  const session = new ChildSession(config);
  const outcome = await session.exited;
  session.wipeFrames();
  return outcome;
}

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
type CoreRecord =
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

function scanPhase(pid: number, needles: Buffer[], labels: string[]): PhaseScan & { mappings: Mapping[] } {
  const scan = scanProcess(pid, needles);
  return {
    hits: scan.hits.map((h) => ({
      secret: h.needle,
      label: labels[h.needle] as string,
      encoding: h.encoding,
      bytes: h.bytes,
      address: `0x${h.address.toString(16)}`,
      mapping: mappingRecord(h.mapping),
    })),
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
    const coreScan = scanCoreWindows(pid, needles, access.mappings);
    const core: CoreRecord = coreScan.available
      ? {
          available: true,
          coreBytes: coreScan.coreBytes,
          durationMs: coreScan.durationMs,
          hits: coreScan.hits.map((h) => {
            const m = findMapping(access.mappings, h.address);
            return { secret: h.needle, label: labels[h.needle] as string, encoding: h.encoding, bytes: h.bytes, address: `0x${h.address.toString(16)}`, mapping: m === undefined ? null : mappingRecord(m) };
          }),
        }
      : { available: false, reason: coreScan.reason, tooLarge: coreScan.tooLarge === true };
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
