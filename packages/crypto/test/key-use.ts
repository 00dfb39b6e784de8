/**
 * The key-use probe: a child uses keys for many seals, opens, wraps, unwraps, HMACs and
 * derivations, collects its garbage, and is scanned from outside: /proc/<pid>/mem (every hit
 * classified by its mapping's VmFlags) and a gcore core dump.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type MemoryHit, WindowSet, scanCore, scanProcess } from './scan.ts';

const CHILD = fileURLToPath(new URL('fixtures/key-use-child.mjs', import.meta.url));
const SAMPLE_EVERY = 50;

/** What the probe saw. */
export interface KeyUseReport {
  backend: string;
  /** Keys looked for, by kind. */
  keys: { kek: number; intermediate: number; dataKeys: number; derived: number };
  windows: number;
  scannedBytes: number;
  /** Hits in locked, undumped memory, by key kind. */
  protectedHits: Record<string, number>;
  /** Hits anywhere else, by key kind. */
  unprotectedHits: Record<string, number>;
  /** Where the unprotected hits were (the first few). */
  where: MemoryHit[];
  /** Hits in the core dump, by key kind; undefined when no core was taken. */
  coreHits: Record<string, number> | undefined;
  coreBytes: number;
}

export function tally(hits: MemoryHit[], wanted: boolean): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const hit of hits) if (hit.protected === wanted) counts[hit.owner] = (counts[hit.owner] ?? 0) + 1;
  return counts;
}

/** A child that reported its keys on fd 3 and is ready to be scanned. */
export interface Holder {
  pid: number;
  /** The `ready` event's fields. */
  ready: Record<string, unknown>;
  /** Everything the child wrote to fd 3. */
  keyBytes: Buffer;
}

/**
 * Runs `node --expose-gc <args>` with fd 3 as a pipe, waits for its `{"event":"ready"}` line and
 * the end of fd 3, calls `observe`, then ends the child.
 */
export async function withHolder<T>(args: string[], observe: (holder: Holder) => T): Promise<T> {
  const child = spawn(process.execPath, ['--expose-gc', ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const keyBytes = new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      const fd3 = child.stdio[3] as NodeJS.ReadableStream;
      fd3.on('data', (b: Buffer) => parts.push(b));
      fd3.on('end', () => resolve(Buffer.concat(parts)));
      fd3.on('error', reject);
    });
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      let pending = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        pending += chunk;
        const line = pending.split('\n').find((l) => l.includes('"ready"'));
        if (line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>);
      });
      child.on('exit', (code, signal) => reject(new Error(`the child ended (${code}, ${signal}) before it was ready: ${stderr}`)));
    });
    const event = await ready;
    return observe({ pid: child.pid as number, ready: event, keyBytes: await keyBytes });
  } finally {
    child.stdin?.end('exit\n');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    await exited;
  }
}

/** Runs the child for `records` records in `mode` with the backend `module`, scans it and ends it. */
export async function probeKeyUse(module: string, mode: 'ours' | 'node', records: number, core: boolean): Promise<KeyUseReport> {
  return withHolder([CHILD, module, mode, String(records)], ({ pid, ready, keyBytes: bytes }) => {
    const samples = Math.ceil(records / SAMPLE_EVERY);
    if (bytes.byteLength !== 32 * (2 + 2 * samples)) throw new Error(`the child reported ${bytes.byteLength} key bytes`);
    const needles = new WindowSet();
    const keyAt = (i: number) => bytes.subarray(32 * i, 32 * i + 32);
    needles.add('kek', keyAt(0));
    needles.add('intermediate', keyAt(1));
    for (let i = 0; i < samples; i += 1) needles.add('dataKey', keyAt(2 + i));
    for (let i = 0; i < samples; i += 1) needles.add('derived', keyAt(2 + samples + i));
    bytes.fill(0);
    const memory = scanProcess(pid, needles);
    const unprotected = memory.hits.filter((h) => !h.protected);
    const coreScan = core ? scanCore(pid, needles) : undefined;
    return {
      backend: String(ready.backend),
      keys: { kek: 1, intermediate: 1, dataKeys: samples, derived: samples },
      windows: needles.size,
      scannedBytes: memory.scannedBytes,
      protectedHits: tally(memory.hits, true),
      unprotectedHits: tally(memory.hits, false),
      where: unprotected.slice(0, 8),
      coreHits: coreScan === undefined ? undefined : Object.fromEntries(coreScan.counts),
      coreBytes: coreScan?.coreBytes ?? 0,
    };
  });
}
