/**
 * Reproducible bytes from a seed (xorshift32, the low byte of each step): the one generator behind
 * the fuzz's and the workloads' bytes and the outside-scan fixtures' sources, so that a parent can
 * derive the bytes a child made and search for them.
 * @module
 */

/**
 * Fills `bytes` in place, one element at a time, with the xorshift32 sequence of `seed` (a seed of 0
 * counts as 1). Reads nothing but the view's elements: never its `.buffer`, so a small typed array
 * stays inside its V8 heap object.
 */
export function fillPattern(bytes: Uint8Array, seed: number): Uint8Array {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes.length; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Bytes from a seed (xorshift32): the same seed and size always give the same bytes. */
export function patternBytes(seed: number, size: number): Buffer {
  return fillPattern(Buffer.allocUnsafe(size), seed ^ 0x9e3779b9) as Buffer;
}
