/**
 * The crypto workload of `secure-memory bench` (#15; the idea of packages/crypto/bench/bench.mjs):
 * AES-256-GCM seal and open and an envelope record under a key held by each backend, and the same
 * with node:crypto and a heap key as the peer.
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Secret, SecretFactory } from '@secure-memory/core';
import type { BenchCase, Runner } from './bench-harness.js';
import type { Variant } from './bench-floors.js';
import type { MatrixTarget } from './matrix.js';

interface Aead {
  seal(plaintext: Uint8Array): Uint8Array;
  open(box: Uint8Array): Uint8Array;
  wrap(secret: Secret): Uint8Array;
  close(): void;
}
export type AeadFn = (algorithm: 'aes-256-gcm', key: Secret) => Aead;

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
export function cryptoCases(target: MatrixTarget, factory: SecretFactory, variant: Variant, aead: AeadFn): BenchCase[] {
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
export function nodeCryptoCases(): BenchCase[] {
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
