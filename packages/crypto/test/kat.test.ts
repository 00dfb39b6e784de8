/**
 * Known answers: every algorithm agrees with node:crypto (and, for XChaCha20-Poly1305, which
 * node:crypto lacks, with the draft RFC's vector and with sodium-native's own libsodium), in both
 * directions, on a Secret of every backend.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { aead, hkdf, hmac, type AeadAlgorithm } from '../src/index.ts';
import { createFactory } from '@secure-memory/protected-memory';
import { factories, secretOf } from './backends.ts';

/** sodium-native (its own build of libsodium), typed for the two calls used here. */
const sodiumNative = createRequire(import.meta.url)('sodium-native') as {
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: Buffer, nsec: null, npub: Buffer, k: Buffer): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: Buffer, npub: Buffer, k: Buffer): number;
};

const NODE_NAMES: Partial<Record<AeadAlgorithm, string>> = {
  'aes-256-gcm': 'aes-256-gcm',
  'chacha20-poly1305': 'chacha20-poly1305',
};

function nodeSeal(algorithm: string, key: Uint8Array, message: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = randomBytes(12);
  const cipher = createCipheriv(algorithm as CipherGCMTypes, key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: message.byteLength });
  const body = Buffer.concat([cipher.update(message), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

function nodeOpen(algorithm: string, key: Uint8Array, box: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = box.subarray(0, 12);
  const body = box.subarray(12, box.byteLength - 16);
  const decipher = createDecipheriv(algorithm as CipherGCMTypes, key, nonce, { authTagLength: 16 });
  decipher.setAuthTag(box.subarray(box.byteLength - 16));
  decipher.setAAD(aad, { plaintextLength: body.byteLength });
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

function sodiumOpen(key: Uint8Array, box: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.alloc(box.byteLength - 24 - 16);
  sodiumNative.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, Buffer.from(box.subarray(24)), Buffer.from(aad), Buffer.from(box.subarray(0, 24)), Buffer.from(key));
  return out;
}

function sodiumSeal(key: Uint8Array, message: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = randomBytes(24);
  const out = Buffer.alloc(message.byteLength + 16);
  sodiumNative.crypto_aead_xchacha20poly1305_ietf_encrypt(out, Buffer.from(message), Buffer.from(aad), null, nonce, Buffer.from(key));
  return Buffer.concat([nonce, out]);
}

const otherSeal = (algorithm: AeadAlgorithm, key: Uint8Array, message: Uint8Array, aad: Uint8Array) =>
  algorithm === 'xchacha20-poly1305' ? sodiumSeal(key, message, aad) : nodeSeal(NODE_NAMES[algorithm] as string, key, message, aad);
const otherOpen = (algorithm: AeadAlgorithm, key: Uint8Array, box: Uint8Array, aad: Uint8Array) =>
  algorithm === 'xchacha20-poly1305' ? sodiumOpen(key, box, aad) : nodeOpen(NODE_NAMES[algorithm] as string, key, box, aad);

const ALGORITHMS: AeadAlgorithm[] = ['aes-256-gcm', 'chacha20-poly1305', 'xchacha20-poly1305'];
const SIZES = [0, 1, 15, 16, 17, 100, 10_240];

describe.each(factories())('known answers on %s', (_name, makeFactory) => {
  const factory = makeFactory();

  describe.each(ALGORITHMS)('%s', (algorithm) => {
    it.each(SIZES)('seals %i bytes that the reference opens, and opens what the reference sealed', (size) => {
      const key = randomBytes(32);
      const message = randomBytes(size);
      const aad = randomBytes(size % 7);
      using kek = secretOf(factory, key);
      using cipher = aead(algorithm, kek);
      const box = cipher.seal(message, { aad });
      expect(box.byteLength).toBe(cipher.overhead + size);
      expect(otherOpen(algorithm, key, box, aad).equals(message)).toBe(true);
      const theirs = otherSeal(algorithm, key, message, aad);
      expect(Buffer.from(cipher.open(theirs, { aad })).equals(message)).toBe(true);
    });

    it('wraps a Secret that the reference opens, and unwraps what the reference sealed into an equal Secret', () => {
      const key = randomBytes(32);
      using kek = secretOf(factory, key);
      using cipher = aead(algorithm, kek);
      const dataKeyBytes = randomBytes(32);
      using dataKey = secretOf(factory, dataKeyBytes);
      const wrapped = cipher.wrap(dataKey, { aad: Buffer.from('record-1') });
      expect(otherOpen(algorithm, key, wrapped, Buffer.from('record-1')).equals(dataKeyBytes)).toBe(true);
      const theirs = otherSeal(algorithm, key, dataKeyBytes, Buffer.from('record-2'));
      using unwrapped = cipher.unwrap(theirs, factory, { aad: Buffer.from('record-2') });
      expect(unwrapped.size).toBe(32);
      expect(unwrapped.equals(dataKeyBytes)).toBe(true);
      expect(String(unwrapped)).toMatch(new RegExp(`^Secret\\(${factory.name}, 32 bytes\\)$`));
    });

    it('uses fresh nonces: the same message twice gives different boxes', () => {
      using kek = factory.createRandom(32);
      using cipher = aead(algorithm, kek);
      const a = cipher.seal(Buffer.from('same'));
      const b = cipher.seal(Buffer.from('same'));
      expect(Buffer.from(a.subarray(0, cipher.nonceBytes)).equals(b.subarray(0, cipher.nonceBytes))).toBe(false);
    });

    it('keeps working after the key Secret is closed (the key state is its own)', () => {
      const kek = factory.createRandom(32);
      using cipher = aead(algorithm, kek);
      kek.close();
      expect(Buffer.from(cipher.open(cipher.seal(Buffer.from('after')))).toString()).toBe('after');
    });
  });

  it.each([
    ['sha256', 1],
    ['sha256', 32],
    ['sha256', 64],
    ['sha256', 200],
    ['sha512', 1],
    ['sha512', 64],
    ['sha512', 128],
    ['sha512', 300],
  ] as const)('hmac %s with a %i-byte key equals node:crypto', (algorithm, keySize) => {
    const key = randomBytes(keySize);
    using secret = secretOf(factory, key);
    for (const size of [0, 3, 64, 1000]) {
      const data = randomBytes(size);
      expect(Buffer.from(hmac(algorithm, secret, data)).equals(createHmac(algorithm, key).update(data).digest())).toBe(true);
    }
  });

  it.each([
    ['sha256', 32, 16, 8, 32],
    ['sha256', 22, 0, 0, 42],
    ['sha256', 80, 80, 80, 82],
    ['sha256', 16, 13, 10, 255 * 32],
    ['sha512', 32, 32, 5, 64],
    ['sha512', 64, 0, 20, 100],
    ['sha512', 7, 200, 0, 255 * 64],
  ] as const)('hkdf %s (ikm %i, salt %i, info %i, length %i) equals node:crypto', (algorithm, ikmSize, saltSize, infoSize, length) => {
    const ikm = randomBytes(ikmSize);
    const salt = randomBytes(saltSize);
    const info = randomBytes(infoSize);
    using secret = secretOf(factory, ikm);
    using derived = hkdf(algorithm, secret, { salt, info, length }, factory);
    expect(derived.size).toBe(length);
    expect(derived.equals(new Uint8Array(hkdfSync(algorithm, ikm, salt, info, length)))).toBe(true);
  });

  it('hkdf without salt and info equals node:crypto with empty ones (RFC 5869 A.3)', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    using secret = secretOf(factory, ikm);
    using derived = hkdf('sha256', secret, { length: 42 }, factory);
    const okm = Buffer.from('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8', 'hex');
    expect(derived.equals(okm)).toBe(true);
  });
});

describe('XChaCha20-Poly1305 against draft-irtf-cfrg-xchacha-03, A.3.1', () => {
  it('opens the published box', () => {
    const factory = createFactory();
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i));
    const nonce = Buffer.from(Array.from({ length: 24 }, (_, i) => 0x40 + i));
    const aad = Buffer.from('50515253c0c1c2c3c4c5c6c7', 'hex');
    const plaintext = Buffer.from("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const ciphertext = Buffer.from(
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e',
      'hex',
    );
    const tag = Buffer.from('c0875924c1c7987947deafd8780acf49', 'hex');
    using kek = secretOf(factory, key);
    using cipher = aead('xchacha20-poly1305', kek);
    expect(Buffer.from(cipher.open(Buffer.concat([nonce, ciphertext, tag]), { aad })).equals(plaintext)).toBe(true);
  });
});
