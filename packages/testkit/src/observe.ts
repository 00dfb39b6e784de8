/**
 * The parent side of the out-of-process probes: it starts child processes that hold secrets, and
 * observes them from outside (memory scans, core dumps, smaps) or watches them die.
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Guarantees, RegionLocation } from '@secure-memory/core';
import { type ChildConfig, HELD_SIZES } from './protocol.js';
import { type CoreScan, scanCoreDump } from './coredump.js';
import { type Mapping, type MemoryScan, findMapping, readMappings, scanMemory, tryReadRegion } from './proc.js';

/** The compiled child script; the same path from src/ (tests) and dist/. */
export const CHILD_SCRIPT = fileURLToPath(new URL('../dist/child.js', import.meta.url));

type ChildEvent = { event: string } & Record<string, unknown>;

/** How a child process ended, with every event it reported. */
export interface ChildOutcome {
  events: ChildEvent[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

const CHILD_TIMEOUT_MS = 120_000;

/** A running child process, driven by commands and awaited by event name. */
class ChildSession {
  readonly #child;
  readonly #events: ChildEvent[] = [];
  readonly #waiters: { name: string; resolve: (e: ChildEvent) => void; reject: (e: Error) => void }[] = [];
  #stderr = '';
  readonly exited: Promise<ChildOutcome>;
  /** Everything the child wrote to file descriptor 3. */
  readonly plaintext: Promise<Buffer>;

  constructor(config: ChildConfig) {
    this.#child = spawn(process.execPath, [CHILD_SCRIPT, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    let pending = '';
    this.#child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.startsWith('{')) this.#push(JSON.parse(line) as ChildEvent);
      }
    });
    this.#child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    const fd3 = this.#child.stdio[3] as NodeJS.ReadableStream;
    this.plaintext = new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      fd3.on('data', (b: Buffer) => parts.push(b));
      fd3.on('end', () => resolve(Buffer.concat(parts)));
      fd3.on('error', reject);
    });
    this.exited = new Promise((resolve) => {
      this.#child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const outcome = { events: this.#events, code, signal, stderr: this.#stderr };
        for (const w of this.#waiters.splice(0)) {
          w.reject(new Error(`the child ended (code ${code}, signal ${signal}) before "${w.name}": ${this.#describeFailure()}`));
        }
        resolve(outcome);
      });
    });
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
  session.plaintext.catch(() => {});
  return session.exited;
}

/** A phase of the holder's life in which it was observed. */
export type Phase = 'idle' | 'access' | 'closed';

/** A hit, made JSON-friendly. */
export interface HitRecord {
  secret: number;
  address: string;
  mapping: { range: string; perms: string; path: string; vmFlags: string[] };
}

/** What one phase's memory scan saw. */
export interface PhaseScan {
  hits: HitRecord[];
  scannedBytes: number;
  unreadable: number;
}

/** The mapping of a region a backend pointed at, as seen in one phase. */
export interface RegionView {
  address: string;
  size: number;
  mapping: HitRecord['mapping'] | null;
  /** The error code of an external read of the region, or null when it could be read. */
  readError: string | null;
}

/** Everything the probes saw of one backend with one set of options. */
export interface Observations {
  name: string;
  guarantees: Guarantees;
  sizes: number[];
  scans: Record<Phase, PhaseScan>;
  cores: { idle: CoreScan; access: CoreScan };
  regions: { idle: (RegionView | null)[]; access: (RegionView | null)[] };
  equals: { correct: boolean; sharedImplementation: boolean };
  keepView: ChildOutcome;
  guardAfter: ChildOutcome;
  guardBefore: ChildOutcome;
  canary: ChildOutcome;
}

function mappingRecord(m: Mapping): HitRecord['mapping'] {
  return { range: `${m.start.toString(16)}-${m.end.toString(16)}`, perms: m.perms, path: m.path, vmFlags: m.vmFlags };
}

function scanPhase(pid: number, needles: Buffer[]): PhaseScan {
  const scan: MemoryScan = scanMemory(pid, needles);
  return {
    hits: scan.hits.map((h) => ({ secret: h.needle, address: `0x${h.address.toString(16)}`, mapping: mappingRecord(h.mapping) })),
    scannedBytes: scan.scannedBytes,
    unreadable: scan.unreadable.length,
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
      readError: tryReadRegion(pid, r.address, r.size) ?? null,
    };
  });
}

/** Progress callback: a short line per step. */
export type Progress = (message: string) => void;

/**
 * Observes a backend from outside: one holder child (memory scans idle, during access and after
 * close; a core dump idle and during access; its regions' mappings), and one short-lived child per
 * fault probe. Probes run once per backend and options, not once per test.
 */
export async function observe(module: string, options: Record<string, unknown> | undefined, progress: Progress = () => {}): Promise<Observations> {
  const base = { module, ...(options === undefined ? {} : { options }) };
  const holder = new ChildSession({ ...base, mode: 'hold' });
  let held: Omit<Observations, 'keepView' | 'guardAfter' | 'guardBefore' | 'canary'>;
  try {
    progress('starting a child that holds secrets');
    const ready = await holder.waitFor('ready');
    const plaintext = await holder.plaintext;
    const needles: Buffer[] = [];
    let offset = 0;
    for (const size of HELD_SIZES) {
      needles.push(plaintext.subarray(offset, offset + size));
      offset += size;
    }
    if (offset !== plaintext.byteLength) throw new Error(`the child sent ${plaintext.byteLength} bytes of plaintext, not ${offset}`);
    const regions = (ready.regions as ({ address: string; size: number } | null)[]).map((r) =>
      r === null ? null : { address: BigInt(r.address), size: r.size },
    );
    const pid = holder.pid;

    progress('scanning memory while idle');
    const idle = scanPhase(pid, needles);
    const idleRegions = viewRegions(pid, regions);
    progress('taking a core dump while idle');
    const idleCore = scanCoreDump(pid, needles);

    await holder.command('access', 'accessing');
    progress('scanning memory during access');
    const access = scanPhase(pid, needles);
    const accessRegions = viewRegions(pid, regions);
    progress('taking a core dump during access');
    const accessCore = scanCoreDump(pid, needles);
    await holder.command('release', 'released');

    await holder.command('close', 'closed');
    progress('scanning memory after close');
    const closed = scanPhase(pid, needles);
    needles.forEach((n) => n.fill(0));
    plaintext.fill(0);
    held = {
      name: ready.name as string,
      guarantees: ready.guarantees as Guarantees,
      sizes: [...HELD_SIZES],
      scans: { idle, access, closed },
      cores: { idle: idleCore, access: accessCore },
      regions: { idle: idleRegions, access: accessRegions },
      equals: ready.equals as Observations['equals'],
    };
  } finally {
    holder.kill();
  }
  await holder.exited;
  progress('fault probes: a kept view, guard pages, canary');
  const [keepView, guardAfter, guardBefore, canary] = await Promise.all(
    (['keep-view', 'guard-after', 'guard-before', 'canary'] as const).map((mode) => runChild({ ...base, mode })),
  );
  return { ...held, keepView, guardAfter, guardBefore, canary } as Observations;
}
