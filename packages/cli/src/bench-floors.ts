/**
 * The floors of `secure-memory bench`: each backend's system-call sequence (and an access's
 * protection pair with a read of every page) as a script that memguard's development floor addon
 * runs in C, and which floor each matrix column is measured against.
 * @module
 */
import type { FloorScript, FloorStep, FloorTiming } from '@secure-memory/memguard/bench';
import type { BenchCase, Runner } from './bench-harness.js';
import type { MatrixTarget } from './matrix.js';

const PAGE = 4096;
const MiB = 1 << 20;

const rw = (page: number, pages = 1): FloorStep => ({ call: 'mprotect', page, pages, prot: 'readwrite' });
const none = (page: number, pages = 1): FloorStep => ({ call: 'mprotect', page, pages, prot: 'none' });

/** An access: the protection pair and a read of every page between (the secret's page is locked). */
function accessFloor(pages: number): FloorScript {
  return {
    prologue: [{ call: 'mmap', pages, prot: 'readwrite' }, { call: 'mlock', page: 0, pages }, none(0, pages)],
    body: [{ call: 'mprotect', page: 0, pages, prot: 'read' }, { call: 'read', page: 0, pages }, none(0, pages)],
    epilogue: [{ call: 'munmap' }],
  };
}

/** protected-memory's mapping of one page: mmap, mlock, two madvise (DONTDUMP, WIPEONFORK). */
const PROTECTED_MAP: FloorStep[] = [
  { call: 'mmap', pages: 1, prot: 'readwrite' },
  { call: 'mlock', page: 0, pages: 1 },
  { call: 'madvise', page: 0, pages: 1, advice: 'dontdump' },
  { call: 'madvise', page: 0, pages: 1, advice: 'wipeonfork' },
];

/** protected-memory, one page per secret: mmap, mlock, two madvise, mprotect NONE; close: mprotect RW, wipe, munmap (7 calls; munmap unlocks). */
const PROTECTED_PAGE: FloorScript = {
  body: [...PROTECTED_MAP, { call: 'write', offset: 0, bytes: 32 }, none(0), rw(0), { call: 'wipe', offset: 0, bytes: 32 }, { call: 'munmap' }],
};

/** protected-memory slab packing, on a slab that is already mapped and locked: the slot's page opened and closed twice (4 calls). */
const PROTECTED_SLAB: FloorScript = {
  prologue: [
    ...PROTECTED_MAP,
    none(0),
  ],
  body: [rw(0), { call: 'write', offset: 64, bytes: 32 }, none(0), rw(0), { call: 'wipe', offset: 64, bytes: 32 }, none(0)],
  epilogue: [{ call: 'munmap' }],
};

/** memguard's new buffer of 32 B: guard, data page, guard: mmap, mprotect, mlock, two madvise, the copy, mprotect NONE. */
const MEMGUARD_NEW: FloorStep[] = [
  { call: 'mmap', pages: 3, prot: 'none' },
  rw(1),
  { call: 'mlock', page: 1, pages: 1 },
  { call: 'madvise', page: 0, pages: 3, advice: 'dontdump' },
  { call: 'madvise', page: 0, pages: 3, advice: 'wipeonfork' },
  { call: 'write', offset: 2 * PAGE - 32, bytes: 32 },
  none(1),
];

/** memguard, locked: its new buffer; close: mprotect RW, wipe, munmap (8 calls: munmap unlocks). */
const MEMGUARD_LOCKED: FloorScript = {
  body: [...MEMGUARD_NEW, rw(1), { call: 'wipe', offset: PAGE, bytes: PAGE }, { call: 'munmap' }],
};

/**
 * libsodium's sodium_malloc(32) and sodium_free (10 calls): base page, guard, data page, guard
 * mapped RW; the guards NONE, madvise DONTDUMP and mlock of the data page, the base page READ; free:
 * all RW, wipe, madvise DODUMP, munlock, munmap. With `idleNoAccess`, the data page NONE after the
 * copy and RW again before the wipe (12 calls): what the sodium backend's noAccessWhenIdle needs.
 */
export function sodiumFloor(idleNoAccess: boolean): FloorScript {
  const data = 3 * PAGE - 32;
  return {
    body: [
      { call: 'mmap', pages: 4, prot: 'readwrite' },
      none(1),
      none(3),
      { call: 'madvise', page: 2, pages: 1, advice: 'dontdump' },
      { call: 'mlock', page: 2, pages: 1 },
      { call: 'mprotect', page: 0, pages: 1, prot: 'read' },
      { call: 'write', offset: data, bytes: 32 },
      ...(idleNoAccess ? [none(2), rw(2)] : []),
      rw(0, 4),
      { call: 'wipe', offset: 2 * PAGE, bytes: PAGE },
      { call: 'madvise', page: 2, pages: 1, advice: 'dodump' },
      { call: 'munlock', page: 2, pages: 1 },
      { call: 'munmap' },
    ],
  };
}

/** memguard's seal of 1 MiB against OpenSSL's ChaCha20-Poly1305 in place, and its open against OpenSSL's decryption into locked pages. */
export const SEAL_1MIB = {
  name: 'OpenSSL seal 1 MiB in place',
  script: {
    prologue: [{ call: 'mmap', pages: MiB / PAGE, prot: 'readwrite' }, { call: 'mlock', page: 0, pages: MiB / PAGE }],
    body: [{ call: 'seal', page: 0, pages: MiB / PAGE }],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};
export const OPEN_1MIB = {
  name: 'OpenSSL open 1 MiB',
  script: {
    prologue: [
      { call: 'mmap', pages: (2 * MiB) / PAGE, prot: 'readwrite' },
      { call: 'mlock', page: MiB / PAGE, pages: MiB / PAGE },
      { call: 'seal', page: 0, pages: MiB / PAGE },
    ],
    body: [{ call: 'open', page: 0, pages: MiB / PAGE, to: MiB / PAGE }],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};

/**
 * The same work as memguard's seal and open of 1 MiB, where the floors above do less: a seal reads
 * the source and writes the box elsewhere, then wipes the source (`newEnclave` wipes its argument);
 * an open's destroy wipes the opened pages. The seal and open cases name them as their `sameWork`
 * floor, beside the in-place one: the JSON's `ratioToSameWork` says what the in-place floors leave out.
 */
export const SEAL_1MIB_SAME_WORK = {
  name: 'OpenSSL seal 1 MiB into other pages, and wipe of the source',
  script: {
    prologue: [{ call: 'mmap', pages: (2 * MiB) / PAGE, prot: 'readwrite' }],
    body: [
      { call: 'sealTo', page: 0, pages: MiB / PAGE, to: MiB / PAGE },
      { call: 'wipe', offset: 0, bytes: MiB },
    ],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};
export const OPEN_1MIB_SAME_WORK = {
  name: 'OpenSSL open 1 MiB, and wipe of the opened pages',
  script: {
    prologue: OPEN_1MIB.script.prologue,
    body: [...OPEN_1MIB.script.body, { call: 'wipe', offset: MiB, bytes: MiB }],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};

/** A backend's variant: its name in results, and the floors of its new+close and of its access. */
export interface Variant {
  backend: string;
  mode: string;
  allocFloor?: { name: string; script: FloorScript };
  accessFloor?: { name: string; script: FloorScript };
}

export const ACCESS_1 = { name: 'access (1 page)', script: accessFloor(1) };

/** An access in memguard's layout: the data page between two guard pages, locked, all three advised (DONTDUMP, WIPEONFORK). */
export const ACCESS_MEMGUARD = {
  name: 'access (guarded page, memguard layout)',
  script: {
    prologue: MEMGUARD_NEW,
    body: [{ call: 'mprotect', page: 1, pages: 1, prot: 'read' }, { call: 'read', page: 1, pages: 1 }, none(1)],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};

/**
 * An access in enclave mode, to a secret that keeps its region (memguard's warm list): the region
 * made writable, the 32-byte box decrypted into it (OpenSSL's ChaCha20-Poly1305, tag checked), made
 * read-only, read, made writable, wiped and made inaccessible again (four mprotect). The box lies in
 * an ordinary page of the same mapping (in memguard it is on the heap).
 */
const ACCESS_ENCLAVE = {
  name: 'enclave access (open into a kept guarded page)',
  script: {
    prologue: [
      { call: 'mmap', pages: 4, prot: 'none' },
      rw(1),
      { call: 'mlock', page: 1, pages: 1 },
      { call: 'madvise', page: 0, pages: 3, advice: 'dontdump' },
      { call: 'madvise', page: 0, pages: 3, advice: 'wipeonfork' },
      rw(3),
      { call: 'write', offset: 3 * PAGE, bytes: 32 },
      { call: 'sealBytes', offset: 3 * PAGE, bytes: 32 },
      none(1),
    ],
    body: [
      rw(1),
      { call: 'openBytes', offset: 3 * PAGE, bytes: 32, to: 2 * PAGE - 32 },
      { call: 'mprotect', page: 1, pages: 1, prot: 'read' },
      { call: 'read', page: 1, pages: 1 },
      rw(1),
      { call: 'wipe', offset: 2 * PAGE - 32, bytes: 32 },
      none(1),
    ],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};

/** What each matrix column is, by its module and options. */
export function variantOf(target: MatrixTarget): Variant {
  const options = (target.options ?? {}) as Record<string, unknown>;
  const backend = target.module.replace('@secure-memory/', '');
  if (backend === 'protected-memory') {
    if (options.secretMemory === 'require') return { backend, mode: 'secret', accessFloor: ACCESS_1 };
    if (options.packing === 'slab') return { backend, mode: 'slab', allocFloor: { name: 'protected-memory slab slot', script: PROTECTED_SLAB }, accessFloor: ACCESS_1 };
    return { backend, mode: 'page', allocFloor: { name: 'protected-memory page', script: PROTECTED_PAGE }, accessFloor: ACCESS_1 };
  }
  if (backend === 'memguard') {
    if (options.mode === 'enclave') return { backend, mode: 'enclave', accessFloor: ACCESS_ENCLAVE };
    return { backend, mode: 'locked', allocFloor: { name: 'memguard locked buffer', script: MEMGUARD_LOCKED }, accessFloor: ACCESS_MEMGUARD };
  }
  if (backend === 'sodium') return { backend, mode: 'default', allocFloor: { name: 'sodium_malloc + noaccess pair + sodium_free', script: sodiumFloor(true) }, accessFloor: ACCESS_1 };
  return { backend, mode: 'default' };
}

/** The floor cases, one per distinct script (their ids are `floor:<name>|<operation>`). */
export function floorCase(name: string, script: FloorScript, runFloor: (s: FloorScript, n: number) => FloorTiming): BenchCase {
  return {
    id: `floor:${name}`,
    name: `floor: ${name}`,
    backend: 'floor',
    mode: 'c',
    operation: name,
    role: 'floor',
    script,
    setup: (): Runner => ({ kind: 'native', run: (n) => runFloor(script, n), teardown: () => {} }),
  };
}
