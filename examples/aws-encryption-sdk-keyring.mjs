// A keyring for the AWS Encryption SDK for JavaScript whose wrapping key is a Secret.
//
//   node examples/aws-encryption-sdk-keyring.mjs
//   SECURE_MEMORY_BACKEND=memguard node examples/aws-encryption-sdk-keyring.mjs
//
// Needs @aws-crypto/client-node (a dev dependency of @secure-memory/crypto, for this example only).
//
// SecretAesKeyringNode wraps the SDK's data keys with AES-256-GCM under a wrapping key held in
// protected memory: the key is read once into an @secure-memory/crypto aead (its key schedule in
// locked memory that core dumps leave out) and never handed to node:crypto, unlike the SDK's
// RawAesKeyringNode, which takes the wrapping key as a heap buffer and gives it to createCipheriv.
// The encryption context is bound to each wrapped data key as AAD.
//
// The data keys themselves are the SDK's: it holds them in its own memory (a KeyObject where Node
// has them) for the life of the material, by its design. This keyring wraps and unwraps them
// through Secrets (gcm.wrap reads a Secret without the heap; gcm.unwrap decrypts into a new
// Secret) and hands the SDK one copy, which the SDK owns.
import { pathToFileURL } from 'node:url';
import { CommitmentPolicy, EncryptedDataKey, KeyringNode, KeyringTraceFlag, buildClient, unwrapDataKey } from '@aws-crypto/client-node';
import { createSecretFactory } from '@secure-memory/core';
import { aead } from '@secure-memory/crypto';

const ENCRYPT_FLAGS = KeyringTraceFlag.WRAPPING_KEY_ENCRYPTED_DATA_KEY | KeyringTraceFlag.WRAPPING_KEY_SIGNED_ENC_CTX;
const DECRYPT_FLAGS = KeyringTraceFlag.WRAPPING_KEY_DECRYPTED_DATA_KEY | KeyringTraceFlag.WRAPPING_KEY_VERIFIED_ENC_CTX;

/** The encryption context as AAD: its entries sorted by key, as JSON. */
function contextAad(encryptionContext) {
  const entries = Object.entries(encryptionContext).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

/** A raw AES-256-GCM keyring whose wrapping key is a 32-byte Secret of any backend. Close it when done. */
export class SecretAesKeyringNode extends KeyringNode {
  #gcm;
  #factory;

  /**
   * @param {{ keyNamespace: string, keyName: string, wrappingKey: import('@secure-memory/core').Secret, factory: import('@secure-memory/core').SecretFactory }} input
   */
  constructor({ keyNamespace, keyName, wrappingKey, factory }) {
    super();
    if (typeof keyNamespace !== 'string' || typeof keyName !== 'string' || keyNamespace === '' || keyName === '') {
      throw new TypeError('keyNamespace and keyName must be non-empty strings');
    }
    this.keyNamespace = keyNamespace;
    this.keyName = keyName;
    this.#gcm = aead('aes-256-gcm', wrappingKey);
    this.#factory = factory;
  }

  async _onEncrypt(material) {
    const trace = { keyNamespace: this.keyNamespace, keyName: this.keyName };
    if (!material.hasUnencryptedDataKey) {
      const generated = this.#factory.createRandom(material.suite.keyLengthBytes);
      try {
        material.setUnencryptedDataKey(generated.withBytes((bytes) => Uint8Array.from(bytes)), {
          ...trace,
          flags: KeyringTraceFlag.WRAPPING_KEY_GENERATED_DATA_KEY,
        });
      } finally {
        generated.close();
      }
    }
    // A copy of the SDK's data key, moved into protected memory (new() zero-fills the copy).
    const dataKey = this.#factory.new(Uint8Array.from(unwrapDataKey(material.getUnencryptedDataKey())));
    try {
      const wrapped = this.#gcm.wrap(dataKey, { aad: contextAad(material.encryptionContext) });
      const edk = new EncryptedDataKey({ providerId: this.keyNamespace, providerInfo: this.keyName, encryptedDataKey: wrapped });
      return material.addEncryptedDataKey(edk, ENCRYPT_FLAGS);
    } finally {
      dataKey.close();
    }
  }

  async _onDecrypt(material, encryptedDataKeys) {
    if (material.hasValidKey()) return material;
    const aad = contextAad(material.encryptionContext);
    for (const edk of encryptedDataKeys) {
      if (edk.providerId !== this.keyNamespace || edk.providerInfo !== this.keyName) continue;
      let dataKey;
      try {
        dataKey = this.#gcm.unwrap(edk.encryptedDataKey, this.#factory, { aad });
      } catch (error) {
        if (error.code === 'ERR_INTEGRITY') continue; // not ours, or changed: another keyring may open it
        throw error;
      }
      try {
        return material.setUnencryptedDataKey(dataKey.withBytes((bytes) => Uint8Array.from(bytes)), {
          keyNamespace: this.keyNamespace,
          keyName: this.keyName,
          flags: DECRYPT_FLAGS,
        });
      } finally {
        dataKey.close();
      }
    }
    return material;
  }

  /** Wipes the wrapping key's schedule. */
  close() {
    this.#gcm.close();
  }

  [Symbol.dispose]() {
    this.close();
  }
}

async function main() {
  const factory = await createSecretFactory(); // SECURE_MEMORY_BACKEND, else the strongest here
  const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  // In production the wrapping key comes from a mounted secret: factory.fromFd(fd, 32).
  const wrappingKey = factory.createRandom(32);
  const keyring = new SecretAesKeyringNode({ keyNamespace: 'secure-memory', keyName: 'wrapping-key-1', wrappingKey, factory });
  try {
    const plaintext = Buffer.from('the quarterly numbers');
    const encryptionContext = { tenant: 'acme', purpose: 'example' };
    const { result } = await encrypt(keyring, plaintext, { encryptionContext });
    const { plaintext: opened, messageHeader } = await decrypt(keyring, result);
    if (!opened.equals(plaintext)) throw new Error('round trip failed');
    if (messageHeader.encryptionContext.tenant !== 'acme') throw new Error('encryption context lost');
    console.log(`aws encryption sdk keyring ok with ${factory.name} (${wrappingKey})`);
  } finally {
    keyring.close();
    wrappingKey.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
