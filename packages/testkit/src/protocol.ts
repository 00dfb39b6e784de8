/**
 * What the parent and the child processes of the probes agree on.
 * @module
 */

/** What the parent asks a child to do. */
export interface ChildConfig {
  mode: 'hold' | 'keep-view' | 'keep-after-close' | 'transfer' | 'guard-after' | 'guard-before' | 'canary' | 'contract' | 'reliability' | 'key-use';
  module: string;
  options?: Record<string, unknown>;
  /** The key-use probe's workload: a module URL or specifier, the records, how often a key is sampled. */
  keyUse?: { workload: string; records: number; sampleEvery: number };
}

/**
 * The secrets a holder makes, in order, and how: from the factory's CSPRNG, and through `new` from
 * every kind of source real code hands it (an off-heap ArrayBuffer, and the small sources V8 keeps
 * inside the heap object, and a slice of Buffer's shared pool). Each is searched for idle, during
 * access and after close and GC.
 */
export const HELD = [
  { label: 'createRandom(32)', size: 32 },
  { label: 'new(off-heap ArrayBuffer, 32)', size: 32 },
  { label: 'createRandom(3000)', size: 3000 },
  { label: 'new(new Uint8Array(32))', size: 32 },
  { label: 'new(Buffer.alloc(32))', size: 32 },
  { label: 'new(Buffer pool slice, 32)', size: 32 },
] as const;

/**
 * The secrets a worker thread of the holder makes; searched for after the worker is terminated. 48
 * bytes (still inside a V8 heap object as a source): what a freed block keeps beyond the allocator's
 * 16 bytes of bookkeeping is more than one window.
 */
export const WORKER_HELD = [
  { label: 'worker: createRandom(48)', size: 48 },
  { label: 'worker: new(new Uint8Array(48))', size: 48 },
] as const;

/**
 * Plaintext travels from child to parent on file descriptor 3 as frames: one byte of label length,
 * the label (ASCII), four bytes of size (little-endian), then the bytes.
 */
export function parseFrames(data: Buffer): { frames: Map<string, Buffer>; rest: Buffer } {
  const frames = new Map<string, Buffer>();
  let at = 0;
  for (;;) {
    if (data.byteLength < at + 1) break;
    const labelLength = data[at] as number;
    if (data.byteLength < at + 1 + labelLength + 4) break;
    const label = data.toString('latin1', at + 1, at + 1 + labelLength);
    const size = data.readUInt32LE(at + 1 + labelLength);
    const start = at + 1 + labelLength + 4;
    if (data.byteLength < start + size) break;
    frames.set(label, data.subarray(start, start + size));
    at = start + size;
  }
  return { frames, rest: data.subarray(at) };
}
