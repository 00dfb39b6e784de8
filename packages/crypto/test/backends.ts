/**
 * The factories the tests run on: the three backends of this repo and the testkit's plain-heap
 * control backend, which stands for a third-party backend that offers nothing but the contract.
 */
import type { SecretFactory } from '@secure-memory/core';
import { createFactory as memguard } from '@secure-memory/memguard';
import { createFactory as protectedMemory } from '@secure-memory/protected-memory';
import { createFactory as sodium } from '@secure-memory/sodium';
import { createFactory as control } from '@secure-memory/testkit/control';

/** Module specifiers of the backends whose keys must leave no copy behind. */
export const BACKEND_MODULES = ['@secure-memory/protected-memory', '@secure-memory/sodium', '@secure-memory/memguard'] as const;

/** A fresh factory of each backend, by name. */
export function factories(): [string, () => SecretFactory][] {
  return [
    ['protected-memory', () => protectedMemory()],
    ['sodium', () => sodium()],
    ['memguard', () => memguard()],
    ['control (third-party stand-in)', () => control()],
  ];
}

/** A secret holding a copy of `bytes` (the copy handed over is wiped by `new`). */
export function secretOf(factory: SecretFactory, bytes: Uint8Array) {
  return factory.new(Uint8Array.from(bytes));
}
