// Envelope encryption with a key-encryption key (KEK) held as a Secret.
//
//   node examples/envelope-encryption.mjs [kek-file]
//   SECURE_MEMORY_BACKEND=sodium node examples/envelope-encryption.mjs
//
// The KEK is read from a file descriptor straight into protected memory (factory.fromFd): it never
// passes through the JavaScript heap. Each message gets a fresh data key (DEK), generated inside
// protected memory, used once, wrapped under the KEK with AES-256-GCM, and closed.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecretFactory } from '@secure-memory/core';

const factory = await createSecretFactory(); // SECURE_MEMORY_BACKEND, else the strongest here

// For the demo, make a KEK file when none is given; in production it is a mounted secret.
let kekPath = process.argv[2];
let demoDir;
if (kekPath === undefined) {
  demoDir = mkdtempSync(join(tmpdir(), 'envelope-'));
  kekPath = join(demoDir, 'kek');
  writeFileSync(kekPath, randomBytes(32), { mode: 0o600 });
}

function seal(key, plaintext) {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, body, tag: cipher.getAuthTag() };
}

function open(key, { iv, body, tag }) {
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

/** Encrypts `message` under a fresh DEK, and wraps the DEK under the KEK. */
function encrypt(kek, message) {
  const dek = factory.createRandom(32);
  try {
    const data = dek.withBytes((key) => seal(key, message));
    const wrappedKey = dek.withBytes((dekBytes) => kek.withBytes((kekBytes) => seal(kekBytes, dekBytes)));
    return { wrappedKey, data };
  } finally {
    dek.close();
  }
}

/** Unwraps the DEK into protected memory (the heap copy node:crypto returns is wiped at once), then decrypts. */
function decrypt(kek, { wrappedKey, data }) {
  const dek = factory.new(kek.withBytes((kekBytes) => open(kekBytes, wrappedKey)));
  try {
    return dek.withBytes((key) => open(key, data));
  } finally {
    dek.close();
  }
}

// Plain JavaScript on Node 20 has no `using`; TypeScript downlevels `using kek = ...` to this.
const fd = openSync(kekPath, 'r');
let kek;
try {
  kek = factory.fromFd(fd, 32);
  const message = Buffer.from('the quarterly numbers');
  const envelope = encrypt(kek, message);
  const roundTrip = decrypt(kek, envelope);
  if (!roundTrip.equals(message)) throw new Error('round trip failed');
  console.log(`envelope encryption ok with ${factory.name} (${kek})`);
} finally {
  kek?.close();
  closeSync(fd);
  if (demoDir !== undefined) rmSync(demoDir, { recursive: true, force: true });
}
