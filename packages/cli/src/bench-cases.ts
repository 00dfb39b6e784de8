/**
 * What `secure-memory bench` measures: each backend's contract operations and crypto workload, the
 * peers (raw sodium-native, node:crypto with a heap key), memguard's own Enclave operations, and
 * the floors: each backend's system-call sequence as a script that memguard's development floor
 * addon runs in C. The same builders serve the timing run and the counting child.
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { loadBackend, type Secret, type SecretFactory } from '@secure-memory/core';
import type { FloorScript, FloorStep, FloorTiming } from '@secure-memory/memguard/bench';
import type { BenchCase, Runner } from './bench-harness.js';
import type { MatrixTarget } from './matrix.js';

const PAGE = 4096;
const MiB = 1 << 20;

// --- Floors -----------------------------------------------------------------------------------------

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

/** protected-memory, one page per secret: mmap, mlock, two madvise, mprotect NONE; close: mprotect RW, wipe, munlock, munmap (8 calls). */
const PROTECTED_PAGE: FloorScript = {
  body: [
    { call: 'mmap', pages: 1, prot: 'readwrite' },
    { call: 'mlock', page: 0, pages: 1 },
    { call: 'madvise', page: 0, pages: 1, advice: 'dontdump' },
    { call: 'madvise', page: 0, pages: 1, advice: 'wipeonfork' },
    { call: 'write', offset: 0, bytes: 32 },
    none(0),
    rw(0),
    { call: 'wipe', offset: 0, bytes: 32 },
    { call: 'munlock', page: 0, pages: 1 },
    { call: 'munmap' },
  ],
};

/** protected-memory slab packing, on a slab that is already mapped and locked: the slot's page opened and closed twice (4 calls). */
const PROTECTED_SLAB: FloorScript = {
  prologue: [
    { call: 'mmap', pages: 1, prot: 'readwrite' },
    { call: 'mlock', page: 0, pages: 1 },
    { call: 'madvise', page: 0, pages: 1, advice: 'dontdump' },
    { call: 'madvise', page: 0, pages: 1, advice: 'wipeonfork' },
    none(0),
  ],
  body: [rw(0), { call: 'write', offset: 64, bytes: 32 }, none(0), rw(0), { call: 'wipe', offset: 64, bytes: 32 }, none(0)],
  epilogue: [{ call: 'munmap' }],
};

/** memguard, locked: guard, data page, guard: mmap, mprotect, mlock, two madvise, mprotect NONE; close: mprotect RW, wipe, munlock, munmap (9 calls). */
const MEMGUARD_LOCKED: FloorScript = {
  body: [
    { call: 'mmap', pages: 3, prot: 'none' },
    rw(1),
    { call: 'mlock', page: 1, pages: 1 },
    { call: 'madvise', page: 0, pages: 3, advice: 'dontdump' },
    { call: 'madvise', page: 0, pages: 3, advice: 'wipeonfork' },
    { call: 'write', offset: 2 * PAGE - 32, bytes: 32 },
    none(1),
    rw(1),
    { call: 'wipe', offset: PAGE, bytes: PAGE },
    { call: 'munlock', page: 1, pages: 1 },
    { call: 'munmap' },
  ],
};

/**
 * libsodium's sodium_malloc(32) and sodium_free (10 calls): base page, guard, data page, guard
 * mapped RW; the guards NONE, madvise DONTDUMP and mlock of the data page, the base page READ; free:
 * all RW, wipe, madvise DODUMP, munlock, munmap. With `idleNoAccess`, the data page NONE after the
 * copy and RW again before the wipe (12 calls): what the sodium backend's noAccessWhenIdle needs.
 */
function sodiumFloor(idleNoAccess: boolean): FloorScript {
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
const SEAL_1MIB = {
  name: 'OpenSSL seal 1 MiB in place',
  script: {
    prologue: [{ call: 'mmap', pages: MiB / PAGE, prot: 'readwrite' }, { call: 'mlock', page: 0, pages: MiB / PAGE }],
    body: [{ call: 'seal', page: 0, pages: MiB / PAGE }],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};
const OPEN_1MIB = {
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

/** A backend's variant: its name in results, and the floors of its new+close and of its access. */
interface Variant {
  backend: string;
  mode: string;
  allocFloor?: { name: string; script: FloorScript };
  accessFloor?: { name: string; script: FloorScript };
}

const ACCESS_1 = { name: 'access (1 page)', script: accessFloor(1) };

/** An access in memguard's layout: the data page between two guard pages, locked, all three advised (DONTDUMP, WIPEONFORK). */
const ACCESS_MEMGUARD = {
  name: 'access (guarded page, memguard layout)',
  script: {
    prologue: [
      { call: 'mmap', pages: 3, prot: 'none' },
      rw(1),
      { call: 'mlock', page: 1, pages: 1 },
      { call: 'madvise', page: 0, pages: 3, advice: 'dontdump' },
      { call: 'madvise', page: 0, pages: 3, advice: 'wipeonfork' },
      { call: 'write', offset: 2 * PAGE - 32, bytes: 32 },
      none(1),
    ],
    body: [{ call: 'mprotect', page: 1, pages: 1, prot: 'read' }, { call: 'read', page: 1, pages: 1 }, none(1)],
    epilogue: [{ call: 'munmap' }],
  } satisfies FloorScript,
};

/** What each matrix column is, by its module and options. */
function variantOf(target: MatrixTarget): Variant {
  const options = (target.options ?? {}) as Record<string, unknown>;
  const backend = target.module.replace('@secure-memory/', '');
  if (backend === 'protected-memory') {
    if (options.secretMemory === 'require') return { backend, mode: 'secret', accessFloor: ACCESS_1 };
    if (options.packing === 'slab') return { backend, mode: 'slab', allocFloor: { name: 'protected-memory slab slot', script: PROTECTED_SLAB }, accessFloor: ACCESS_1 };
    return { backend, mode: 'page', allocFloor: { name: 'protected-memory page', script: PROTECTED_PAGE }, accessFloor: ACCESS_1 };
  }
  if (backend === 'memguard') {
    if (options.mode === 'enclave') return { backend, mode: 'enclave', accessFloor: ACCESS_MEMGUARD };
    return { backend, mode: 'locked', allocFloor: { name: 'memguard locked buffer', script: MEMGUARD_LOCKED }, accessFloor: ACCESS_MEMGUARD };
  }
  if (backend === 'sodium') return { backend, mode: 'default', allocFloor: { name: 'sodium_malloc + noaccess pair + sodium_free', script: sodiumFloor(true) }, accessFloor: ACCESS_1 };
  return { backend, mode: 'default' };
}

/** The floor cases, one per distinct script (their ids are `floor:<name>|<operation>`). */
function floorCase(name: string, script: FloorScript, runFloor: (s: FloorScript, n: number) => FloorTiming): BenchCase {
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

// --- Contract operations ------------------------------------------------------------------------------

function contractCases(target: MatrixTarget, factory: SecretFactory, variant: Variant, peer: boolean, live: readonly number[]): BenchCase[] {
  const base = { name: target.name, backend: variant.backend, mode: variant.mode, role: 'backend' as const };
  const peerOf = (operation: string): { peer?: string } => (peer ? { peer: `peer:sodium-native|${operation}` } : {});
  const access = variant.accessFloor === undefined ? {} : { floor: `floor:${variant.accessFloor.name}` };
  const alloc = variant.allocFloor === undefined ? {} : { floor: `floor:${variant.allocFloor.name}` };
  const held = (): Secret => factory.createRandom(32);
  return [
    {
      ...base,
      ...access,
      ...peerOf('withBytes'),
      id: `${target.name}|withBytes`,
      operation: 'withBytes',
      setup: () => {
        const secret = held();
        const read = (b: Uint8Array): number => b[0] as number;
        return { kind: 'sync', op: () => secret.withBytes(read), teardown: () => secret.close() };
      },
    },
    {
      ...base,
      ...access,
      ...peerOf('withBytesAsync'),
      id: `${target.name}|withBytesAsync`,
      operation: 'withBytesAsync',
      setup: () => {
        const secret = held();
        const read = async (b: Uint8Array): Promise<number> => b[0] as number;
        return { kind: 'async', op: () => secret.withBytesAsync(read), teardown: () => secret.close() };
      },
    },
    {
      ...base,
      ...alloc,
      ...peerOf('newClose'),
      id: `${target.name}|newClose`,
      operation: 'newClose',
      setup: () => {
        const source = Buffer.alloc(32);
        const pattern = randomBytes(32);
        return {
          kind: 'sync',
          op: () => {
            source.set(pattern);
            factory.new(source).close();
          },
          teardown: () => pattern.fill(0),
        };
      },
    },
    // The cost of a new+close among many live secrets (the mapping budget counts /proc/self/maps,
    // whose length grows with them): the sodium backend's four mappings per secret make it the one to watch.
    ...(variant.backend === 'sodium' ? live : []).map(
      (count): BenchCase => ({
        ...base,
        ...alloc,
        id: `${target.name}|newClose@${count}live`,
        operation: `newClose@${count}live`,
        setup: () => {
          const held: Secret[] = [];
          try {
            for (let i = 0; i < count; i += 1) held.push(factory.createRandom(32));
          } catch (error) {
            for (const s of held) s.close();
            throw error;
          }
          const source = Buffer.alloc(32);
          return {
            kind: 'sync',
            op: () => factory.new(source.fill(7)).close(),
            teardown: () => {
              for (const s of held) s.close();
            },
          };
        },
      }),
    ),
    {
      ...base,
      ...alloc,
      ...peerOf('createRandomClose'),
      id: `${target.name}|createRandomClose`,
      operation: 'createRandomClose',
      setup: () => ({ kind: 'sync', op: () => factory.createRandom(32).close(), teardown: () => {} }),
    },
  ];
}

interface SodiumNative {
  sodium_malloc(size: number): Buffer;
  sodium_free(buffer: Buffer): void;
  sodium_mprotect_noaccess(buffer: Buffer): void;
  sodium_mprotect_readonly(buffer: Buffer): void;
  randombytes_buf(buffer: Buffer): void;
}

/** Raw sodium-native: what a careful user would write by hand. Its frees run on a later turn: the harness drains them inside the timing. */
function sodiumPeerCases(sodium: SodiumNative, floors: boolean): BenchCase[] {
  const base = { name: 'peer:sodium-native', backend: 'sodium-native', mode: 'raw', role: 'peer' as const };
  const access = floors ? { floor: `floor:${ACCESS_1.name}` } : {};
  const alloc = floors ? { floor: 'floor:sodium_malloc + sodium_free' } : {};
  const held = (): Buffer => {
    const buffer = sodium.sodium_malloc(32);
    sodium.randombytes_buf(buffer);
    sodium.sodium_mprotect_noaccess(buffer);
    return buffer;
  };
  return [
    {
      ...base,
      ...access,
      id: 'peer:sodium-native|withBytes',
      operation: 'withBytes',
      setup: () => {
        const buffer = held();
        return {
          kind: 'sync',
          op: () => {
            sodium.sodium_mprotect_readonly(buffer);
            const x = buffer[0];
            sodium.sodium_mprotect_noaccess(buffer);
            return x;
          },
          teardown: () => sodium.sodium_free(buffer),
        };
      },
    },
    {
      ...base,
      ...access,
      id: 'peer:sodium-native|withBytesAsync',
      operation: 'withBytesAsync',
      setup: () => {
        const buffer = held();
        return {
          kind: 'async',
          op: async () => {
            sodium.sodium_mprotect_readonly(buffer);
            try {
              return await Promise.resolve(buffer[0]);
            } finally {
              sodium.sodium_mprotect_noaccess(buffer);
            }
          },
          teardown: () => sodium.sodium_free(buffer),
        };
      },
    },
    {
      ...base,
      ...alloc,
      id: 'peer:sodium-native|newClose',
      operation: 'newClose',
      setup: () => {
        const pattern = randomBytes(32);
        return {
          kind: 'sync',
          op: () => {
            const buffer = sodium.sodium_malloc(32);
            buffer.set(pattern);
            sodium.sodium_free(buffer);
          },
          teardown: () => pattern.fill(0),
        };
      },
    },
    {
      ...base,
      ...alloc,
      id: 'peer:sodium-native|createRandomClose',
      operation: 'createRandomClose',
      setup: () => ({
        kind: 'sync',
        op: () => {
          const buffer = sodium.sodium_malloc(32);
          sodium.randombytes_buf(buffer);
          sodium.sodium_free(buffer);
        },
        teardown: () => {},
      }),
    },
  ];
}

// --- Crypto workload (#15; the idea of packages/crypto/bench/bench.mjs) -----------------------------------

interface Aead {
  seal(plaintext: Uint8Array): Uint8Array;
  open(box: Uint8Array): Uint8Array;
  wrap(secret: Secret): Uint8Array;
  close(): void;
}
type AeadFn = (algorithm: 'aes-256-gcm', key: Secret) => Aead;

const SMALL = 100;
const LARGE = 10 * 1024;

/** The messages and boxes of one workload: random, made once. */
function messages(): { small: Buffer; large: Buffer } {
  return { small: randomBytes(SMALL), large: randomBytes(LARGE) };
}

function nodeSeal(key: Uint8Array, message: Uint8Array): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = cipher.update(message);
  cipher.final();
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function nodeOpen(key: Uint8Array, box: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, box.subarray(0, 12));
  decipher.setAuthTag(box.subarray(box.length - 16));
  const out = decipher.update(box.subarray(12, box.length - 16));
  decipher.final();
  return out;
}

/**
 * The crypto workload of one backend: seal and open of 100 B and 10 KiB under a key-encryption key
 * held by the backend, and a whole envelope record (a data key made as a Secret of the backend's
 * factory, a seal of 100 B under it, a wrap of it under the KEK, both closed).
 */
function cryptoCases(target: MatrixTarget, factory: SecretFactory, variant: Variant, aead: AeadFn): BenchCase[] {
  const base = { name: target.name, backend: variant.backend, mode: variant.mode, role: 'backend' as const };
  /** One KEK per case, closed by the case's teardown. */
  const withKek = (make: (gcm: Aead, m: ReturnType<typeof messages>) => () => unknown): (() => Runner) => () => {
    const kek = factory.createRandom(32);
    let gcm: Aead;
    try {
      gcm = aead('aes-256-gcm', kek);
    } catch (error) {
      kek.close();
      throw error;
    }
    const op = make(gcm, messages());
    return {
      kind: 'sync',
      op,
      teardown: () => {
        gcm.close();
        kek.close();
      },
    };
  };
  const one = (operation: string, bytes: number | undefined, make: Parameters<typeof withKek>[0]): BenchCase => ({
    ...base,
    id: `${target.name}|${operation}`,
    operation,
    peer: `peer:node:crypto|${operation}`,
    ...(bytes === undefined ? {} : { bytes }),
    setup: withKek(make),
  });
  return [
    one('seal100B', SMALL, (gcm, m) => () => gcm.seal(m.small)),
    one('open100B', SMALL, (gcm, m) => {
      const box = gcm.seal(m.small);
      return () => gcm.open(box);
    }),
    one('seal10KiB', LARGE, (gcm, m) => () => gcm.seal(m.large)),
    one('open10KiB', LARGE, (gcm, m) => {
      const box = gcm.seal(m.large);
      return () => gcm.open(box);
    }),
    one('envelopeRecord', undefined, (gcm, m) => () => {
      const dataKey = factory.createRandom(32);
      try {
        const dek = aead('aes-256-gcm', dataKey);
        try {
          return { data: dek.seal(m.small), wrappedKey: gcm.wrap(dataKey) };
        } finally {
          dek.close();
        }
      } finally {
        dataKey.close();
      }
    }),
  ];
}

/** node:crypto with a heap key: the peer of the crypto workload. */
function nodeCryptoCases(): BenchCase[] {
  const base = { name: 'peer:node:crypto', backend: 'node:crypto', mode: 'heap-key', role: 'peer' as const };
  const one = (operation: string, bytes: number | undefined, make: (key: Buffer, m: ReturnType<typeof messages>) => () => unknown): BenchCase => ({
    ...base,
    id: `peer:node:crypto|${operation}`,
    operation,
    ...(bytes === undefined ? {} : { bytes }),
    setup: () => {
      const key = randomBytes(32);
      return { kind: 'sync', op: make(key, messages()), teardown: () => key.fill(0) };
    },
  });
  return [
    one('seal100B', SMALL, (key, m) => () => nodeSeal(key, m.small)),
    one('open100B', SMALL, (key, m) => {
      const box = nodeSeal(key, m.small);
      return () => nodeOpen(key, box);
    }),
    one('seal10KiB', LARGE, (key, m) => () => nodeSeal(key, m.large)),
    one('open10KiB', LARGE, (key, m) => {
      const box = nodeSeal(key, m.large);
      return () => nodeOpen(key, box);
    }),
    one('envelopeRecord', undefined, (kek, m) => () => {
      const dataKey = randomBytes(32);
      return { data: nodeSeal(dataKey, m.small), wrappedKey: nodeSeal(kek, dataKey) };
    }),
  ];
}

// --- memguard's Enclaves ----------------------------------------------------------------------------------

interface EnclaveModule {
  newEnclave?(source: Uint8Array): { open(): { destroy(): void } };
  newEnclaveRandom?(size: number): { open(): { destroy(): void } };
}

/** memguard's own Enclave operations: open+destroy of 32 B (pooled), and seal and open of 1 MiB. */
function enclaveCases(mg: EnclaveModule): BenchCase[] {
  const { newEnclave, newEnclaveRandom } = mg;
  if (newEnclave === undefined || newEnclaveRandom === undefined) return [];
  const base = { name: 'memguard', backend: 'memguard', mode: 'enclave-api', role: 'backend' as const };
  return [
    {
      ...base,
      id: 'memguard|enclaveOpenDestroy',
      operation: 'enclaveOpenDestroy',
      floor: `floor:${ACCESS_MEMGUARD.name}`,
      setup: () => {
        const enclave = newEnclaveRandom(32);
        return { kind: 'sync', op: () => enclave.open().destroy(), teardown: () => {} };
      },
    },
    {
      ...base,
      id: 'memguard|seal1MiB',
      operation: 'seal1MiB',
      floor: `floor:${SEAL_1MIB.name}`,
      bytes: MiB,
      setup: () => {
        const source = new Uint8Array(MiB); // zero-filled by each seal, as seal's contract says
        return { kind: 'sync', op: () => newEnclave(source), teardown: () => {} };
      },
    },
    {
      ...base,
      id: 'memguard|open1MiB',
      operation: 'open1MiB',
      floor: `floor:${OPEN_1MIB.name}`,
      bytes: MiB,
      setup: () => {
        const enclave = newEnclaveRandom(MiB);
        return { kind: 'sync', op: () => enclave.open().destroy(), teardown: () => {} };
      },
    },
  ];
}

// --- All of it ---------------------------------------------------------------------------------------------

async function optionalImport<T>(specifier: string): Promise<T | undefined> {
  try {
    return (await import(specifier)) as T;
  } catch {
    return undefined;
  }
}

/** The cases of a run, and the matrix columns that loaded. */
export interface CaseSet {
  cases: BenchCase[];
  loaded: MatrixTarget[];
}

/**
 * Every case of a run over `targets`: floors first (when `runFloor` is given), then the backends'
 * contract and crypto operations, memguard's Enclave operations, and the peers. `liveSecrets`: the
 * numbers of live secrets the sodium backend's new+close is also measured among.
 */
export async function buildCases(
  targets: readonly MatrixTarget[],
  runFloor: ((s: FloorScript, n: number) => FloorTiming) | undefined,
  log: (line: string) => void,
  liveSecrets: readonly number[] = [],
): Promise<CaseSet> {
  const cases: BenchCase[] = [];
  const floors = new Map<string, BenchCase>();
  const addFloor = (f: { name: string; script: FloorScript } | undefined): void => {
    if (runFloor !== undefined && f !== undefined && !floors.has(f.name)) floors.set(f.name, floorCase(f.name, f.script, runFloor));
  };
  const sodiumModule = await optionalImport<{ default: SodiumNative }>('sodium-native');
  const sodium = sodiumModule?.default ?? (sodiumModule as SodiumNative | undefined);
  const cryptoModule = await optionalImport<{ aead: AeadFn }>('@secure-memory/crypto');
  if (cryptoModule === undefined) log('crypto workload: skipped (@secure-memory/crypto is not installed)');
  const loaded: MatrixTarget[] = [];
  for (const target of targets) {
    let factory: SecretFactory;
    try {
      factory = await loadBackend(target.module, target.options);
    } catch (error) {
      log(`${target.name}: skipped (${(error as { code?: string }).code ?? (error as Error).message})`);
      continue;
    }
    loaded.push(target);
    const variant = variantOf(target);
    addFloor(variant.accessFloor);
    addFloor(variant.allocFloor);
    cases.push(...contractCases(target, factory, variant, sodium !== undefined, liveSecrets));
    if (cryptoModule !== undefined) cases.push(...cryptoCases(target, factory, variant, cryptoModule.aead));
  }
  const memguard = await optionalImport<EnclaveModule>('@secure-memory/memguard');
  if (memguard !== undefined) {
    const enclave = enclaveCases(memguard);
    if (enclave.length > 0) {
      addFloor(ACCESS_MEMGUARD);
      addFloor(SEAL_1MIB);
      addFloor(OPEN_1MIB);
    }
    cases.push(...enclave);
  }
  if (sodium !== undefined) {
    addFloor(ACCESS_1);
    addFloor({ name: 'sodium_malloc + sodium_free', script: sodiumFloor(false) });
    cases.push(...sodiumPeerCases(sodium, runFloor !== undefined));
  } else {
    log('peer:sodium-native: skipped (sodium-native is not installed)');
  }
  if (cryptoModule !== undefined) cases.push(...nodeCryptoCases());
  // Drop links to cases that are absent (a floor not built, a peer not installed).
  const ids = new Set([...floors.keys()].map((n) => `floor:${n}`).concat(cases.map((c) => c.id)));
  for (const c of cases) {
    if (c.floor !== undefined && !ids.has(c.floor)) delete c.floor;
    if (c.peer !== undefined && !ids.has(c.peer)) delete c.peer;
  }
  return { cases: [...floors.values(), ...cases], loaded };
}
