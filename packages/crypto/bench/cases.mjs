// The operations the crypto bench measures, as functions of their inputs, so that another bench
// (`secure-memory bench`) can run exactly the same cases. Nothing here imports a backend or this
// package: the caller hands in `aead` (from @secure-memory/crypto) and the factory.
//
// A whole envelope record, as an SDK makes one: a new data key, a seal of the record under it, a
// wrap of the data key under a cached key-encryption key, and the data key closed.
//   ours: factory.createRandom(32) (a Secret of the user's factory, as the SDK pattern has it),
//         aead(), seal, kekAead.wrap, close both.
//   node: randomBytes(32) (a heap key), createCipheriv for the seal and, with the heap KEK, the wrap.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** AES-256-GCM with node:crypto and a heap key: nonce ‖ ciphertext ‖ tag. */
export function nodeSeal(key, message) {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = cipher.update(message);
  cipher.final();
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

/** Opens what {@link nodeSeal} sealed. */
export function nodeOpen(key, box) {
  const decipher = createDecipheriv('aes-256-gcm', key, box.subarray(0, 12));
  decipher.setAuthTag(box.subarray(box.length - 16));
  const out = decipher.update(box.subarray(12, box.length - 16));
  decipher.final();
  return out;
}

/** node:crypto's envelope record with heap keys. */
export function nodeEnvelopeRecord(kekBytes, payload) {
  const dataKey = randomBytes(32);
  return { data: nodeSeal(dataKey, payload), wrappedKey: nodeSeal(kekBytes, dataKey) };
}

/** Our envelope record: the data key is a Secret of `factory`, used in place. */
export function envelopeRecord(aead, factory, kekAead, payload) {
  const dataKey = factory.createRandom(32);
  try {
    const dek = aead('aes-256-gcm', dataKey);
    try {
      return { data: dek.seal(payload), wrappedKey: kekAead.wrap(dataKey) };
    } finally {
      dek.close();
    }
  } finally {
    dataKey.close();
  }
}

/**
 * The backends and modes the bench runs by default: every mode that changes what a new secret
 * costs. protected-memory's default is secretMemory 'auto' (memfd_secret where the kernel has it).
 */
export const BENCH_TARGETS = [
  { name: "protected-memory (packing 'page')", module: '@secure-memory/protected-memory', options: {} },
  { name: "protected-memory (packing 'slab')", module: '@secure-memory/protected-memory', options: { packing: 'slab' } },
  { name: "protected-memory (page, secretMemory 'off')", module: '@secure-memory/protected-memory', options: { secretMemory: 'off' } },
  { name: "protected-memory (slab, secretMemory 'off')", module: '@secure-memory/protected-memory', options: { packing: 'slab', secretMemory: 'off' } },
  { name: 'sodium', module: '@secure-memory/sodium', options: {} },
  { name: 'memguard (enclave)', module: '@secure-memory/memguard', options: { mode: 'enclave' } },
  { name: 'memguard (locked)', module: '@secure-memory/memguard', options: { mode: 'locked' } },
];
