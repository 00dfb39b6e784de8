/**
 * The default workload of the key-use probe: an envelope-encryption SDK written on
 * `@secure-memory/crypto` (an optional peer dependency, loaded when the probe runs). A KEK made
 * in protected memory wraps an intermediate key, which is unwrapped into a Secret and cached as
 * an aead; every record makes a data key with `createRandom`, seals with it, wraps it, unwraps it
 * into a new Secret, opens with that, HMACs with it and with the KEK, derives a key from it with
 * HKDF and HMACs with that; the three AEAD constructions take turns. Every `sampleEvery`-th data
 * key and derived key is kept to be reported, with the KEK and the intermediate key.
 *
 * A workload module exports `run(context)` (and optionally `unavailable()`); pass your own to
 * `probeKeyUse({ workload })` to test a helper of your own, or wrap this one.
 * @module
 */
import type { Secret, SecretFactory } from '@secure-memory/core';
import { randomBytes } from 'node:crypto';

/** The kinds of keys a workload reports. */
export const KEY_KINDS = ['kek', 'intermediate', 'dataKey', 'derived'] as const;
/** One kind of key. */
export type KeyKind = (typeof KEY_KINDS)[number];

/** What the probe hands a workload. */
export interface KeyUseContext {
  /** The factory of the backend under test. */
  factory: SecretFactory;
  /** How many records to run. */
  records: number;
  /** Keep and report every this-many-th data key and derived key. */
  sampleEvery: number;
  /**
   * Hands a key to the parent to be searched for: its bytes are written to a pipe straight from
   * the Secret's view (`fs.writeSync`), never copied in this process. Keys must be at least 16 bytes.
   */
  report(kind: KeyKind, secret: Secret): void;
}

/** A workload module. */
export interface KeyUseWorkload {
  /** Uses keys; resolves to what must stay alive while the process is scanned (aeads, cached keys). */
  run(context: KeyUseContext): unknown;
  /** Why the workload cannot run here (a missing optional dependency), or `undefined`. */
  unavailable?(): Promise<string | undefined> | string | undefined;
}

/** What a workload's record loop keeps: see {@link keyUseSampler}. */
export interface KeyUseSampler {
  /** Keeps `secret` to report as `kind` when record `record` is sampled; closes it otherwise. */
  keep(record: number, kind: KeyKind, secret: Secret): void;
  /** Reports every kept key, in the order kept, and closes it. */
  reportAll(): void;
}

/**
 * The sampling of a workload's record loop: every `sampleEvery`-th record's keys are kept and
 * reported at the end (so that the scan finds whether they outlived their use), the others closed.
 */
export function keyUseSampler({ sampleEvery, report }: Pick<KeyUseContext, 'sampleEvery' | 'report'>): KeyUseSampler {
  const kept: [KeyKind, Secret][] = [];
  return {
    keep(record, kind, secret) {
      if (record % sampleEvery === 0) kept.push([kind, secret]);
      else secret.close();
    },
    reportAll() {
      for (const [kind, key] of kept) {
        report(kind, key);
        key.close();
      }
    },
  };
}

/** The part of `@secure-memory/crypto` the workload uses (typed here: the testkit does not depend on it). */
interface Aead {
  seal(plaintext: Uint8Array, options?: { aad?: Uint8Array }): Uint8Array;
  open(box: Uint8Array, options?: { aad?: Uint8Array }): Uint8Array;
  wrap(secret: Secret, options?: { aad?: Uint8Array }): Uint8Array;
  unwrap(wrapped: Uint8Array, factory: SecretFactory, options?: { aad?: Uint8Array }): Secret;
  close(): void;
}
interface CryptoModule {
  aead(algorithm: string, key: Secret): Aead;
  hmac(algorithm: string, key: Secret, data: Uint8Array): Uint8Array;
  hkdf(algorithm: string, ikm: Secret, options: { salt?: Uint8Array; info?: Uint8Array; length: number }, factory: SecretFactory): Secret;
}

/** The module the workload runs on. */
export const CRYPTO_MODULE = '@secure-memory/crypto';

let loaded: Promise<CryptoModule> | undefined;
const loadCrypto = (): Promise<CryptoModule> => (loaded ??= import(CRYPTO_MODULE) as Promise<CryptoModule>);

/** Why the workload cannot run: `@secure-memory/crypto` cannot be loaded. */
export async function unavailable(): Promise<string | undefined> {
  try {
    await loadCrypto();
    return undefined;
  } catch (error) {
    loaded = undefined;
    const code = (error as { code?: unknown }).code;
    return `${CRYPTO_MODULE} cannot be loaded (${String(code ?? (error as Error).name)}): install it next to @secure-memory/testkit (an optional peer dependency) to run the key-use probe`;
  }
}

const ALGORITHMS = ['aes-256-gcm', 'chacha20-poly1305', 'xchacha20-poly1305'] as const;

/** Runs the envelope SDK; resolves to the KEK, the intermediate key and their cached aeads. */
export async function run({ factory, records, sampleEvery, report }: KeyUseContext): Promise<unknown> {
  const { aead, hkdf, hmac } = await loadCrypto();
  const payload = randomBytes(100);
  const salt = randomBytes(16);
  const info = Buffer.from('record key');
  const kek = factory.createRandom(32);
  report('kek', kek);
  // The first use of the addon is a key copied into its state: a lazily bound symbol resolved right
  // after it would save the registers holding the key on the stack.
  const kekAead = aead('xchacha20-poly1305', kek);
  // The intermediate key: made, wrapped under the KEK, unwrapped into a Secret and cached as an aead.
  const fresh = factory.createRandom(32);
  const wrappedIk = kekAead.wrap(fresh, { aad: info });
  fresh.close();
  const ik = kekAead.unwrap(wrappedIk, factory, { aad: info });
  report('intermediate', ik);
  const ikAead = aead('aes-256-gcm', ik);
  const sampler = keyUseSampler({ sampleEvery, report });
  for (let i = 0; i < records; i += 1) {
    const algorithm = ALGORITHMS[i % 3] as string;
    const aad = Buffer.from(`record-${i}`);
    const dataKey = factory.createRandom(32);
    const sealer = aead(algorithm, dataKey);
    const box = sealer.seal(payload, { aad });
    sealer.close();
    const wrapped = ikAead.wrap(dataKey, { aad });
    sampler.keep(i, 'dataKey', dataKey);
    const unwrapped = ikAead.unwrap(wrapped, factory, { aad });
    const opener = aead(algorithm, unwrapped);
    const plaintext = opener.open(box, { aad });
    opener.close();
    hmac('sha256', unwrapped, plaintext);
    hmac('sha512', kek, plaintext);
    const sub = hkdf(i % 2 === 0 ? 'sha256' : 'sha512', unwrapped, { salt, info, length: 32 }, factory);
    hmac('sha256', sub, payload);
    unwrapped.close();
    sampler.keep(i, 'derived', sub);
  }
  sampler.reportAll();
  // The last uses before the process goes idle, so that what a call leaves behind (on the stack, in
  // registers that something saves later) is not overwritten by later work before the scan.
  for (const algorithm of ALGORITHMS) {
    const last = aead(algorithm, kek);
    const unwrapped = last.unwrap(last.wrap(ik), factory);
    last.open(last.seal(payload));
    last.close();
    unwrapped.close();
  }
  hmac('sha256', kek, payload);
  hmac('sha512', ik, payload);
  hkdf('sha256', kek, { salt, info, length: 32 }, factory).close();
  hkdf('sha512', ik, { length: 64 }, factory).close();
  return [kek, kekAead, ik, ikAead];
}
