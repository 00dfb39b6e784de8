/**
 * What `secure-memory bench` measures: each backend's contract operations, raw sodium-native as
 * their peer, memguard's own Enclave operations, and the assembly of a run's cases (floors from
 * bench-floors.ts, the crypto workload from bench-crypto-cases.ts). The same builders serve the
 * timing run and the counting child.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { loadBackend, type Secret, type SecretFactory } from '@secure-memory/core';
import type { FloorScript, FloorTiming } from '@secure-memory/memguard/bench';
import { type AeadFn, cryptoCases, nodeCryptoCases } from './bench-crypto-cases.js';
import {
  ACCESS_1,
  ACCESS_MEMGUARD,
  floorCase,
  OPEN_1MIB,
  OPEN_1MIB_SAME_WORK,
  SEAL_1MIB,
  SEAL_1MIB_SAME_WORK,
  sodiumFloor,
  type Variant,
  variantOf,
} from './bench-floors.js';
import type { BenchCase, Runner } from './bench-harness.js';
import type { MatrixTarget } from './matrix.js';

const MiB = 1 << 20;

// --- Contract operations ------------------------------------------------------------------------------

/** A case builder over one column's common fields: `one(operation, floor, setup)` with its id and peer. */
type CaseOf = (operation: string, floor: { floor?: string }, setup: () => Runner) => BenchCase;

function contractCases(target: MatrixTarget, factory: SecretFactory, variant: Variant, peer: boolean, live: readonly number[]): BenchCase[] {
  const base = { name: target.name, backend: variant.backend, mode: variant.mode, role: 'backend' as const };
  const one: CaseOf = (operation, floor, setup) => ({
    ...base,
    ...floor,
    ...(peer ? { peer: `peer:sodium-native|${operation}` } : {}),
    id: `${target.name}|${operation}`,
    operation,
    setup,
  });
  const access = variant.accessFloor === undefined ? {} : { floor: `floor:${variant.accessFloor.name}` };
  const alloc = variant.allocFloor === undefined ? {} : { floor: `floor:${variant.allocFloor.name}` };
  // An access reads one byte of the secret's one page: the work of the floor's read of every page.
  const read = (b: Uint8Array): number => b[0] as number;
  const readAsync = async (b: Uint8Array): Promise<number> => b[0] as number;
  /** A new+close among `count` live secrets (none: the plain new+close). */
  const newClose = (count: number) => (): Runner => {
    const held: Secret[] = [];
    try {
      for (let i = 0; i < count; i += 1) held.push(factory.createRandom(32));
    } catch (error) {
      for (const s of held) s.close();
      throw error;
    }
    const source = Buffer.alloc(32);
    const pattern = randomBytes(32);
    return {
      kind: 'sync',
      op: () => {
        source.set(pattern);
        factory.new(source).close();
      },
      teardown: () => {
        pattern.fill(0);
        for (const s of held) s.close();
      },
    };
  };
  return [
    one('withBytes', access, () => {
      const secret = factory.createRandom(32);
      return { kind: 'sync', op: () => secret.withBytes(read), teardown: () => secret.close() };
    }),
    one('withBytesAsync', access, () => {
      const secret = factory.createRandom(32);
      return { kind: 'async', op: () => secret.withBytesAsync(readAsync), teardown: () => secret.close() };
    }),
    one('newClose', alloc, newClose(0)),
    // The cost of a new+close among many live secrets (the mapping budget counts /proc/self/maps,
    // whose length grows with them): the sodium backend's four mappings per secret make it the one to watch.
    ...(variant.backend === 'sodium' ? live : []).map((count) => one(`newClose@${count}live`, alloc, newClose(count))),
    one('createRandomClose', alloc, () => ({ kind: 'sync', op: () => factory.createRandom(32).close(), teardown: () => {} })),
  ];
}

interface SodiumNative {
  sodium_malloc(size: number): Buffer;
  sodium_free(buffer: Buffer): void;
  sodium_mprotect_noaccess(buffer: Buffer): void;
  sodium_mprotect_readonly(buffer: Buffer): void;
  randombytes_buf(buffer: Buffer): void;
}

/**
 * Raw sodium-native: what a careful user would write by hand. Its frees run on a later turn: the
 * harness drains them inside the timing. `live`: the numbers of live buffers (made by
 * sodium_malloc, idle and inaccessible, freed at teardown) among which its new+close is measured
 * too, as the sodium backend's is: whether raw libsodium's cost grows with them the same way.
 */
function sodiumPeerCases(sodium: SodiumNative, floors: boolean, live: readonly number[]): BenchCase[] {
  const one: CaseOf = (operation, floor, setup) => ({
    name: 'peer:sodium-native',
    backend: 'sodium-native',
    mode: 'raw',
    role: 'peer',
    ...(floors ? floor : {}),
    id: `peer:sodium-native|${operation}`,
    operation,
    setup,
  });
  const access = { floor: `floor:${ACCESS_1.name}` };
  const alloc = { floor: 'floor:sodium_malloc + sodium_free' };
  const held = (): Buffer => {
    const buffer = sodium.sodium_malloc(32);
    sodium.randombytes_buf(buffer);
    sodium.sodium_mprotect_noaccess(buffer);
    return buffer;
  };
  /** A sodium_malloc(32), filled by `fill`, and its sodium_free. */
  const newFree = (fill: (buffer: Buffer) => void) => (): void => {
    const buffer = sodium.sodium_malloc(32);
    fill(buffer);
    sodium.sodium_free(buffer);
  };
  /** A new+close among `count` live buffers (none: the plain new+close). */
  const newClose = (count: number) => (): Runner => {
    const buffers: Buffer[] = [];
    try {
      for (let i = 0; i < count; i += 1) buffers.push(held());
    } catch (error) {
      for (const b of buffers) sodium.sodium_free(b);
      throw error;
    }
    const bytes = randomBytes(32);
    return {
      kind: 'sync',
      op: newFree((buffer) => buffer.set(bytes)),
      teardown: () => {
        bytes.fill(0);
        for (const b of buffers) sodium.sodium_free(b);
      },
    };
  };
  return [
    one('withBytes', access, () => {
      const buffer = held();
      const op = (): number | undefined => {
        sodium.sodium_mprotect_readonly(buffer);
        const x = buffer[0];
        sodium.sodium_mprotect_noaccess(buffer);
        return x;
      };
      return { kind: 'sync', op, teardown: () => sodium.sodium_free(buffer) };
    }),
    one('withBytesAsync', access, () => {
      const buffer = held();
      const op = async (): Promise<number | undefined> => {
        sodium.sodium_mprotect_readonly(buffer);
        try {
          return await Promise.resolve(buffer[0]);
        } finally {
          sodium.sodium_mprotect_noaccess(buffer);
        }
      };
      return { kind: 'async', op, teardown: () => sodium.sodium_free(buffer) };
    }),
    one('newClose', alloc, newClose(0)),
    ...live.map((count) => one(`newClose@${count}live`, alloc, newClose(count))),
    one('createRandomClose', alloc, () => ({ kind: 'sync', op: newFree((buffer) => sodium.randombytes_buf(buffer)), teardown: () => {} })),
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
      sameWork: `floor:${SEAL_1MIB_SAME_WORK.name}`,
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
      sameWork: `floor:${OPEN_1MIB_SAME_WORK.name}`,
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
 * numbers of live secrets the sodium backend's new+close, and raw sodium-native's, are also measured among.
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
      addFloor(SEAL_1MIB_SAME_WORK);
      addFloor(OPEN_1MIB_SAME_WORK);
    }
    cases.push(...enclave);
  }
  if (sodium !== undefined) {
    addFloor(ACCESS_1);
    addFloor({ name: 'sodium_malloc + sodium_free', script: sodiumFloor(false) });
    cases.push(...sodiumPeerCases(sodium, runFloor !== undefined, liveSecrets));
  } else {
    log('peer:sodium-native: skipped (sodium-native is not installed)');
  }
  if (cryptoModule !== undefined) cases.push(...nodeCryptoCases());
  // Drop links to cases that are absent (a floor not built, a peer not installed).
  const ids = new Set([...floors.keys()].map((n) => `floor:${n}`).concat(cases.map((c) => c.id)));
  for (const c of cases) {
    if (c.floor !== undefined && !ids.has(c.floor)) delete c.floor;
    if (c.peer !== undefined && !ids.has(c.peer)) delete c.peer;
    if (c.sameWork !== undefined && !ids.has(c.sameWork)) delete c.sameWork;
  }
  return { cases: [...floors.values(), ...cases], loaded };
}
