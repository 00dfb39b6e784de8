/**
 * What the probe children share (see `child.ts`): writing plaintext frames to the parent on fd 3
 * straight from a view, sources of random bytes of every kind real code hands `new`, a full
 * garbage collection, and the region a backend points at.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { writeSync } from 'node:fs';
import type { Secret } from '@secure-memory/core';
import { REGION_PROBE, type RegionLocation } from '@secure-memory/core/backend';

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}

export function locate(secret: Secret): RegionLocation | undefined {
  const probe = (secret as unknown as Record<symbol, unknown>)[REGION_PROBE];
  return typeof probe === 'function' ? (probe.call(secret) as RegionLocation | undefined) : undefined;
}

/** Writes one frame of plaintext to the parent (see `parseFrames`), straight from `view`. */
export function writeFrame(label: string, view: Uint8Array): void {
  const header = Buffer.alloc(1 + label.length + 4);
  header[0] = label.length;
  header.write(label, 1, 'latin1');
  header.writeUInt32LE(view.byteLength, 1 + label.length);
  writeAll(3, header);
  writeAll(3, view);
}

/**
 * A source of `size` random bytes of the given kind, filled from JavaScript one element at a time
 * from an off-heap buffer that is then wiped: nothing reads the source's `.buffer`, so a small one
 * stays inside its V8 heap object, as in real use.
 */
export function source(kind: 'off-heap' | 'uint8array' | 'alloc' | 'pool', size: number): Uint8Array {
  const random = new Uint8Array(new ArrayBuffer(size));
  randomFillSync(random);
  if (kind === 'off-heap') return random;
  const target = kind === 'uint8array' ? new Uint8Array(size) : kind === 'alloc' ? Buffer.alloc(size) : Buffer.allocUnsafe(size);
  // Promoted to the old generation before it is filled: a scavenge between the fill and the wipe
  // would leave the collector's own copy of a young source, which no backend can prevent (the
  // README's "What JavaScript cannot promise"); the probe judges what the backend does.
  collectGarbage();
  for (let i = 0; i < size; i += 1) target[i] = random[i] as number;
  random.fill(0);
  return target;
}
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the holder needs --expose-gc');
  gc();
  gc();
}

