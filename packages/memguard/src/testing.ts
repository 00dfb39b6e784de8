/**
 * Hooks for this package's own tests. Not part of the API: they may change in any release.
 * @module
 */
import { type Enclave, enclaveBox } from './enclave.js';
import { flipPreKeyBit, rekeyNow, setKeyStorage } from './key.js';

/**
 * @internal Test hooks: damage the process key as a read-out with one bit error would see it, re-key
 * now, or reach an Enclave's ciphertext to tamper with it.
 */
export const testHooks: Readonly<{
  /** Flips bit `bit` (0 to 131071) of the pre-key and drops the derived key. */
  flipPreKeyBit(bit: number): void;
  /** Re-randomises the key's parts now (the key does not change). */
  rekeyNow(): void;
  /** The live ciphertext box of an Enclave: `[nonce: 12][ciphertext][tag: 16]`. */
  enclaveBox(enclave: Enclave): Uint8Array;
  /** Where the next key keeps its state: `'locked-memory'` forces the fallback; `'auto'` is the default. */
  setKeyStorage(storage: 'auto' | 'locked-memory'): void;
}> = Object.freeze({ flipPreKeyBit, rekeyNow, enclaveBox, setKeyStorage });
