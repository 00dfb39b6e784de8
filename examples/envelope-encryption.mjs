// Envelope encryption with a key-encryption key (KEK) held as a Secret, on @secure-memory/crypto.
//
//   node examples/envelope-encryption.mjs [kek-file]
//   SECURE_MEMORY_BACKEND=sodium node examples/envelope-encryption.mjs
//
// The KEK is read from a file descriptor straight into protected memory (factory.fromFd): it never
// passes through the JavaScript heap. Each message gets a fresh data key (DEK), generated inside
// protected memory; the message is sealed under it with AES-256-GCM, and the DEK is wrapped under
// the KEK (gcm.wrap reads it through locked memory, never the heap). To decrypt, the DEK is
// unwrapped straight into a new Secret (gcm.unwrap), never into an ordinary buffer. The key schedules live in locked memory that core
// dumps leave out, and are wiped when the aead objects are closed. No key byte is handed to
// node:crypto, whose KeyObjects, cipher contexts and update() outputs would copy it into the heap.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecretFactory } from '@secure-memory/core';
import { aead } from '@secure-memory/crypto';

const factory = await createSecretFactory(); // SECURE_MEMORY_BACKEND, else the strongest here

// For the demo, make a KEK file when none is given (written from protected memory, not from a
// heap buffer); in production it is a mounted secret.
let kekPath = process.argv[2];
let demoDir;
if (kekPath === undefined) {
  demoDir = mkdtempSync(join(tmpdir(), 'envelope-'));
  kekPath = join(demoDir, 'kek');
  const out = openSync(kekPath, 'w', 0o600);
  const demoKek = factory.createRandom(32);
  try {
    demoKek.withBytes((bytes) => writeSync(out, bytes));
  } finally {
    demoKek.close();
    closeSync(out);
  }
}

/** Seals `message` under a fresh DEK, and wraps the DEK under the KEK; `aad` binds both to the record. */
function encrypt(kekAead, message, aad) {
  const dek = factory.createRandom(32);
  const dekAead = aead('aes-256-gcm', dek);
  try {
    return { wrappedKey: kekAead.wrap(dek, { aad }), data: dekAead.seal(message, { aad }) };
  } finally {
    dekAead.close();
    dek.close();
  }
}

/** Unwraps the DEK straight into protected memory, then opens the message (ERR_INTEGRITY if anything was changed). */
function decrypt(kekAead, { wrappedKey, data }, aad) {
  const dek = kekAead.unwrap(wrappedKey, factory, { aad });
  const dekAead = aead('aes-256-gcm', dek);
  try {
    return dekAead.open(data, { aad });
  } finally {
    dekAead.close();
    dek.close();
  }
}

// Plain JavaScript on Node 20 has no `using`; TypeScript downlevels `using kek = ...` to this.
const fd = openSync(kekPath, 'r');
let kek;
let kekAead;
try {
  kek = factory.fromFd(fd, 32);
  kekAead = aead('aes-256-gcm', kek);
  const message = Buffer.from('the quarterly numbers');
  const aad = Buffer.from('record 42');
  const envelope = encrypt(kekAead, message, aad);
  const roundTrip = decrypt(kekAead, envelope, aad);
  if (!Buffer.from(roundTrip).equals(message)) throw new Error('round trip failed');
  let tampered = false;
  try {
    decrypt(kekAead, envelope, Buffer.from('record 43'));
  } catch (error) {
    tampered = error.code === 'ERR_INTEGRITY';
  }
  if (!tampered) throw new Error('a record moved to another id was not refused');
  console.log(`envelope encryption ok with ${factory.name} (${kek}, ${kekAead})`);
} finally {
  kekAead?.close();
  kek?.close();
  closeSync(fd);
  if (demoDir !== undefined) rmSync(demoDir, { recursive: true, force: true });
}
