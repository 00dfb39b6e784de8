// The same code on any backend: the operator chooses with SECURE_MEMORY_BACKEND, no code changes.
//
//   SECURE_MEMORY_BACKEND=protected-memory node examples/swap-backend.mjs
//   SECURE_MEMORY_BACKEND=sodium node examples/swap-backend.mjs
//   SECURE_MEMORY_BACKEND=memguard node examples/swap-backend.mjs
import { claimedFlags, createSecretFactory } from '@secure-memory/core';

const factory = await createSecretFactory();
const token = factory.createRandom(32);
try {
  const length = token.withBytes((bytes) => bytes.byteLength);
  console.log(JSON.stringify({ backend: factory.name, length, claims: claimedFlags(factory.guarantees), shown: `${token}` }));
} finally {
  token.close();
}
