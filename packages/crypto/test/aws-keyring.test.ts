/**
 * examples/aws-encryption-sdk-keyring.mjs: a keyring for the AWS Encryption SDK whose wrapping key
 * is a Secret. Round trips on every backend, refuses a changed data key or context, and an outside
 * scan after 200 messages and GC finds the wrapping key only in protected memory; the SDK's own
 * RawAesKeyringNode, given the same key, leaves it in the heap.
 */
import { fileURLToPath } from 'node:url';
import { CommitmentPolicy, EncryptedDataKey, type KeyringNode, NodeAlgorithmSuite, NodeDecryptionMaterial, buildClient } from '@aws-crypto/client-node';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { describe, expect, it } from 'vitest';
import { BACKEND_MODULES, factories } from './backends.ts';
import { scanForKey, withHolder } from './holder.ts';

/** The example is plain JavaScript: its class, typed here. */
type KeyringInput = { keyNamespace: string; keyName: string; wrappingKey: Secret; factory: SecretFactory };
const { SecretAesKeyringNode } = (await import('../../../examples/aws-encryption-sdk-keyring.mjs' as string)) as {
  SecretAesKeyringNode: new (input: KeyringInput) => KeyringNode & Disposable & { close(): void };
};

const CHILD = fileURLToPath(new URL('fixtures/aws-keyring-child.mjs', import.meta.url));
const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

describe.each(factories())('the Secret keyring on %s', (_name, makeFactory) => {
  it('round-trips through the SDK and refuses a changed wrapped key', async () => {
    const factory = makeFactory();
    using wrappingKey = factory.createRandom(32);
    using keyring = new SecretAesKeyringNode({ keyNamespace: 'ns', keyName: 'k1', wrappingKey, factory });
    const plaintext = Buffer.from('payload');
    const { result, messageHeader } = await encrypt(keyring, plaintext, { encryptionContext: { tenant: 'a' } });
    expect(messageHeader.encryptedDataKeys).toHaveLength(1);
    expect(messageHeader.encryptedDataKeys[0]?.providerId).toBe('ns');
    const opened = await decrypt(keyring, result);
    expect(opened.plaintext.equals(plaintext)).toBe(true);
    expect(opened.messageHeader.encryptionContext).toMatchObject({ tenant: 'a' });

    using otherKey = factory.createRandom(32);
    using stranger = new SecretAesKeyringNode({ keyNamespace: 'ns', keyName: 'k1', wrappingKey: otherKey, factory });
    await expect(decrypt(stranger, result)).rejects.toThrow();

    // The keyring refuses a wrapped key that was changed, and one moved to another context.
    const edk = messageHeader.encryptedDataKeys[0] as EncryptedDataKey;
    const changed = Uint8Array.from(edk.encryptedDataKey);
    changed[20] = (changed[20] as number) ^ 1;
    const unwraps = async (context: Record<string, string>, edks: EncryptedDataKey[]) => {
      const material = new NodeDecryptionMaterial(new NodeAlgorithmSuite(messageHeader.suiteId), context);
      return (await keyring.onDecrypt(material, edks)).hasValidKey();
    };
    const context = messageHeader.encryptionContext;
    expect(await unwraps(context, [edk])).toBe(true);
    expect(await unwraps(context, [new EncryptedDataKey({ providerId: edk.providerId, providerInfo: edk.providerInfo, encryptedDataKey: changed })])).toBe(false);
    expect(await unwraps({ ...context, tenant: 'b' }, [edk])).toBe(false);
  });
});

describe.each(BACKEND_MODULES)('an outside scan of a process using the keyring with %s', (module) => {
  it('finds the wrapping key only in protected memory; the SDK\'s RawAesKeyringNode leaves it in the heap', async () => {
    for (const mode of ['ours', 'raw'] as const) {
      const hits = await withHolder([CHILD, module, mode, '200'], ({ pid, keyBytes }) => {
        expect(keyBytes.byteLength).toBe(32);
        const scan = scanForKey(pid, keyBytes);
        return { unprotected: scan.unprotected.length, protected: scan.protected.length };
      });
      // Copies of any 16-byte window, raw or encoded.
      if (mode === 'ours') {
        expect(hits.unprotected).toBe(0);
        expect(hits.protected).toBeGreaterThanOrEqual(1); // the key's halves are AES-256-GCM round keys 0 and 1 in the aead's page
      } else {
        expect(hits.unprotected).toBeGreaterThanOrEqual(1);
      }
    }
  }, 900_000);
});
