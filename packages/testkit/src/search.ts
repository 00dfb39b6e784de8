/**
 * The plaintext search of the probes: finds every copy of at least 16 contiguous bytes of a
 * plaintext (any 16-byte window of it, not only the whole), raw or in one of the encodings a
 * careless backend leaves behind: hex (lower and upper case), base64 and base64url, two-byte
 * (UTF-16LE) strings, and V8's element forms of a small-integer array (`Array.from(bytes)`: one
 * Smi per byte, `value << 32` in an 8-byte slot, as in Node's official x64 builds, which do not
 * compress pointers) and of a double array (one IEEE 754 double per byte).
 *
 * How: every encoded form of every plaintext is indexed by its 8-byte grams (element forms by
 * 32-byte grams, four elements). Memory is sampled at every 8-byte-aligned position; any run of
 * at least `window` encoded bytes (16 plaintext bytes, so at least 15 encoded bytes) contains an
 * aligned gram, which a bit filter and then a map recognise; the run is then extended both ways
 * byte by byte. A copy is counted once per diagonal (memory address minus offset in the
 * plaintext), however many chunks or grams find it. With random plaintexts a 16-byte window
 * occurs elsewhere with probability about 2^-128 per position, so a hit is a copy.
 * @module
 */

/** The minimum copy, in plaintext bytes, that counts as a hit. */
export const WINDOW = 16;

/** The encodings searched for, besides the raw bytes. */
export const ENCODINGS = ['raw', 'hex', 'HEX', 'base64', 'base64url', 'utf16le', 'smi-array', 'double-array'] as const;
/** One encoding. */
export type Encoding = (typeof ENCODINGS)[number];

/** A copy found. */
export interface WindowHit {
  /** Which plaintext (index into the list searched for). */
  needle: number;
  encoding: Encoding;
  /** Where the copy starts (in the address space, or offset in a file). */
  address: bigint;
  /** How many plaintext bytes the copy holds (at least {@link WINDOW}, at most the plaintext's size). */
  bytes: number;
  /** How many bytes of memory the copy spans. */
  span: number;
}

interface Pattern {
  needle: number;
  encoding: Encoding;
  bytes: Uint8Array;
  /** Encoded bytes per plaintext byte. */
  ratio: number;
  /** The shortest run of encoded bytes that counts. */
  window: number;
  /** Skipped plaintext bytes at the start (base64 alignments). */
  shift: number;
}

/** Elements: one 8-byte slot per plaintext byte, its low 32 bits zero. */
function elements(bytes: Uint8Array, kind: 'smi-array' | 'double-array'): Uint8Array {
  const out = Buffer.alloc(bytes.byteLength * 8);
  bytes.forEach((b, i) => {
    if (kind === 'smi-array') out.writeUInt32LE(b, i * 8 + 4);
    else out.writeDoubleLE(b, i * 8);
  });
  return out;
}

function patternsOf(needle: number, plaintext: Uint8Array): Pattern[] {
  const raw = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  const out: Pattern[] = [
    { needle, encoding: 'raw', bytes: raw, ratio: 1, window: WINDOW, shift: 0 },
    { needle, encoding: 'hex', bytes: Buffer.from(raw.toString('hex')), ratio: 2, window: 2 * WINDOW, shift: 0 },
    { needle, encoding: 'HEX', bytes: Buffer.from(raw.toString('hex').toUpperCase()), ratio: 2, window: 2 * WINDOW, shift: 0 },
    { needle, encoding: 'utf16le', bytes: Buffer.from(raw.toString('latin1'), 'utf16le'), ratio: 2, window: 2 * WINDOW, shift: 0 },
    { needle, encoding: 'smi-array', bytes: elements(raw, 'smi-array'), ratio: 8, window: 8 * WINDOW, shift: 0 },
    { needle, encoding: 'double-array', bytes: elements(raw, 'double-array'), ratio: 8, window: 8 * WINDOW, shift: 0 },
  ];
  // base64 of a part that starts at offset a is base64 of the whole from offset a % 3 on: three alignments.
  for (const encoding of ['base64', 'base64url'] as const) {
    for (let shift = 0; shift < 3 && shift < raw.byteLength; shift += 1) {
      // Padding and the last, partial group are left out: they depend on where a copy ends.
      const text = raw.subarray(shift).toString(encoding).replace(/=+$/, '');
      const whole = Math.floor(((raw.byteLength - shift) * 4) / 3);
      out.push({ needle, encoding, bytes: Buffer.from(text.slice(0, whole)), ratio: 4 / 3, window: Math.ceil((WINDOW * 4) / 3) - 1, shift });
    }
  }
  return out;
}

const GRAM = 8;
const ELEMENT_GRAM = 32;
const FILTER_BITS = 21;
const MASK = (1 << FILTER_BITS) - 1;

const hash2 = (lo: number, hi: number): number => (Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> (32 - FILTER_BITS)) & MASK;
/** The key of four element slots: their high words (the low words are zero for Smis and small doubles). */
const hash4 = (a: number, b: number, c: number, d: number): number => hash2(Math.imul(a, 0x27d4eb2f) ^ b, Math.imul(c, 0x165667b1) ^ d);

interface Entry {
  pattern: Pattern;
  offset: number;
}

/**
 * A search for copies of plaintexts: build it once from the plaintexts, then feed it chunks of
 * memory or of a file with their addresses.
 */
export class PlaintextSearch {
  readonly #patterns: Pattern[] = [];
  readonly #filter = new Uint8Array(1 << (FILTER_BITS - 3));
  readonly #elementFilter = new Uint8Array(1 << (FILTER_BITS - 3));
  readonly #grams = new Map<string, Entry[]>();
  readonly #elementGrams = new Map<string, Entry[]>();
  /** Best copy per needle, encoding and diagonal. */
  readonly #found = new Map<string, WindowHit>();
  /** The longest encoded run: chunks must overlap by at least this minus one to see a window across their boundary. */
  readonly overlap: number;

  constructor(plaintexts: readonly Uint8Array[]) {
    plaintexts.forEach((p, i) => {
      if (p.byteLength < WINDOW) throw new RangeError(`plaintext ${i} is shorter than ${WINDOW} bytes`);
      this.#patterns.push(...patternsOf(i, p));
    });
    for (const pattern of this.#patterns) {
      const b = pattern.bytes;
      const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
      if (pattern.ratio === 8) {
        for (let j = 0; j + ELEMENT_GRAM <= b.byteLength; j += 8) {
          const his = [0, 1, 2, 3].map((k) => view.getUint32(j + k * 8 + 4, true));
          if (his.every((h) => h === 0)) continue;
          this.#add(this.#elementFilter, this.#elementGrams, hash4(his[0] as number, his[1] as number, his[2] as number, his[3] as number), his.join(','), { pattern, offset: j });
        }
      } else {
        for (let j = 0; j + GRAM <= b.byteLength; j += 1) {
          const lo = view.getUint32(j, true);
          const hi = view.getUint32(j + 4, true);
          if ((lo | hi) === 0) continue;
          this.#add(this.#filter, this.#grams, hash2(lo, hi), `${lo},${hi}`, { pattern, offset: j });
        }
      }
    }
    this.overlap = Math.max(WINDOW, ...this.#patterns.map((p) => p.window));
  }

  #add(filter: Uint8Array, grams: Map<string, Entry[]>, h: number, key: string, entry: Entry): void {
    filter[h >>> 3] = (filter[h >>> 3] as number) | (1 << (h & 7));
    const list = grams.get(key);
    if (list === undefined) grams.set(key, [entry]);
    else list.push(entry);
  }

  /**
   * Searches one chunk that starts at `address`. `chunk` must start 8-byte aligned in memory
   * (any ArrayBuffer's start is) and its address should be a multiple of 8 for element forms.
   */
  feed(chunk: Uint8Array, address: bigint): void {
    const words = new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength >>> 2);
    const n = words.length - 1;
    const filter = this.#filter;
    const elementFilter = this.#elementFilter;
    for (let i = 0; i < n; i += 2) {
      const lo = words[i] as number;
      const hi = words[i + 1] as number;
      if ((lo | hi) === 0) continue;
      const h = hash2(lo, hi);
      if ((filter[h >>> 3] as number) & (1 << (h & 7))) this.#candidates(this.#grams.get(`${lo},${hi}`), chunk, i * 4, address);
      if (lo === 0 && i + 7 < n && words[i + 2] === 0 && words[i + 4] === 0 && words[i + 6] === 0) {
        const a = hi;
        const b = words[i + 3] as number;
        const c = words[i + 5] as number;
        const d = words[i + 7] as number;
        const e = hash4(a, b, c, d);
        if ((elementFilter[e >>> 3] as number) & (1 << (e & 7))) this.#candidates(this.#elementGrams.get(`${a},${b},${c},${d}`), chunk, i * 4, address);
      }
    }
  }

  #candidates(entries: Entry[] | undefined, chunk: Uint8Array, at: number, address: bigint): void {
    if (entries === undefined) return;
    for (const { pattern, offset } of entries) {
      const p = pattern.bytes;
      let left = 0;
      while (at - left - 1 >= 0 && offset - left - 1 >= 0 && chunk[at - left - 1] === p[offset - left - 1]) left += 1;
      let right = 0;
      while (at + right < chunk.byteLength && offset + right < p.byteLength && chunk[at + right] === p[offset + right]) right += 1;
      const run = left + right;
      if (run < pattern.window) continue;
      const start = address + BigInt(at - left);
      const diagonal = start - BigInt(offset - left);
      const key = `${pattern.needle}:${pattern.encoding}:${pattern.shift}:${diagonal}`;
      const bytes = Math.min(Math.floor(run / pattern.ratio), p.byteLength / pattern.ratio);
      const seen = this.#found.get(key);
      if (seen === undefined) this.#found.set(key, { needle: pattern.needle, encoding: pattern.encoding, address: start, bytes, span: run });
      else if (bytes > seen.bytes) this.#found.set(key, { ...seen, address: start, bytes, span: run });
    }
  }

  /**
   * Every copy found so far, by address. base64 and base64url share 62 of their 64 characters, so
   * one copy can match both: where they overlap, only the longer match is kept.
   */
  hits(): WindowHit[] {
    const all = [...this.#found.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const isBase64 = (h: WindowHit): boolean => h.encoding === 'base64' || h.encoding === 'base64url';
    const overlaps = (a: WindowHit, b: WindowHit): boolean => a.address < b.address + BigInt(b.span) && b.address < a.address + BigInt(a.span);
    return all.filter((h) => !isBase64(h) || !all.some((o) => o !== h && isBase64(o) && o.encoding !== h.encoding && o.needle === h.needle && overlaps(o, h) && (o.bytes > h.bytes || (o.bytes === h.bytes && o.encoding === 'base64'))));
  }
}

/** A short, JSON-friendly account of what the search looks for. */
export const SEARCH_DESCRIPTION = `every ${WINDOW}-byte window of each plaintext, raw and as ${ENCODINGS.filter((e) => e !== 'raw').join(', ')}`;
