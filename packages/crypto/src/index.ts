/**
 * `@secure-memory/crypto`: keys used in place. AEAD (AES-256-GCM, ChaCha20-Poly1305,
 * XChaCha20-Poly1305), key wrapping straight from and into Secrets, HMAC and HKDF, on a Secret's own
 * memory, with every key schedule and working state in locked memory that core dumps leave out
 * and that is wiped after use. The cryptography is libsodium's, linked into a node-addon-api addon.
 * @module
 */
export { aead, AEAD_ALGORITHMS, AEAD_KEY_BYTES, AEAD_TAG_BYTES, AEAD_MAX_MESSAGE_BYTES, type Aead, type AeadAlgorithm, type AeadOptions } from './aead.js';
export { hmac, hkdf, HASH_ALGORITHMS, type HashAlgorithm, type HkdfOptions } from './mac.js';
export { FILL_IN_PLACE } from './fill.js';
