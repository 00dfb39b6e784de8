// The process key of the memguard addon (memguard's coffer), with OpenSSL's SHA-256 and CSPRNG,
// reached through the EVP interface of the OpenSSL Node.js is built with: no primitive is written
// here. The layout of the key state is in memguard.h.
#include "memguard.h"
#include "openssl.h"

#include <openssl/rand.h>

namespace memguard {

// --- The process key ------------------------------------------------------------------------------
//
// The key state is one region of KEY_STATE_BYTES that TypeScript maps (secret memory, or a guarded,
// locked one) and passes by address:
//
//   [pre-key: 16 KiB][right: 32][key: 32][hash: 2 x 32][scratch: 16 KiB]
//
// The enclave key is K = SHA-256(pre-key) XOR right: memguard's coffer (key = H(left) XOR right),
// with OpenSSH's 16 KiB pre-key as the left part, so that a read-out of the state with a single bit
// error gives a key unrelated to K. `key` holds K only while derived (TypeScript wipes it at the end
// of the event-loop turn); the hash and scratch slots are wiped by the function that used them.

// SHA-256 of `length` bytes at `data` into `out` (32 bytes); true on success.
bool Hash(const uint8_t* data, size_t length, uint8_t* out) {
  const EVP_MD* md = Sha256();
  unsigned int written = 0;
  return md != nullptr && EVP_Digest(data, length, out, &written, md, nullptr) == 1 && written == 32;
}

// Fills `length` bytes with OpenSSL's CSPRNG, in pieces RAND_bytes takes; true on success.
bool Random(uint8_t* out, size_t length) {
  while (length > 0) {
    int piece = length > (1u << 30) ? (1 << 30) : static_cast<int>(length);
    if (RAND_bytes(out, piece) != 1) return false;
    out += piece;
    length -= static_cast<size_t>(piece);
  }
  return true;
}

// random(address, length): OpenSSL's CSPRNG straight into the memory; 0, or -1 when it failed.
Napi::Value RandomFill(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Status(info.Env(), Random(address, length) ? 0 : -1);
}

// keyInit(state): a fresh random pre-key and right part (so a fresh random key); 0 or -1.
Napi::Value KeyInit(const Napi::CallbackInfo& info) {
  uint8_t* state = AddressOf(info[0]);
  bool ok = Random(state, kPreKeyBytes) && Random(state + kRightOffset, 32);
  Wipe(state + kKeyOffset, kKeyStateBytes - kKeyOffset);
  return Status(info.Env(), ok ? 0 : -1);
}

// keyDerive(state): key = SHA-256(pre-key) XOR right, into the key slot; 0 or -1.
Napi::Value KeyDerive(const Napi::CallbackInfo& info) {
  uint8_t* state = AddressOf(info[0]);
  uint8_t* key = state + kKeyOffset;
  bool ok = Hash(state, kPreKeyBytes, key);
  if (ok) {
    for (size_t i = 0; i < kKeyBytes; i += 1) key[i] ^= state[kRightOffset + i];
  } else {
    Wipe(key, kKeyBytes);
  }
  return Status(info.Env(), ok ? 0 : -1);
}

// keyRekey(state): re-randomises both parts without changing the key, as memguard's coffer does:
// pre' = pre XOR mask (16 KiB of CSPRNG output), right' = right XOR H(pre) XOR H(pre'), so that
// H(pre') XOR right' = H(pre) XOR right. 0, or -1 when OpenSSL failed: the state is then as it was.
Napi::Value KeyRekey(const Napi::CallbackInfo& info) {
  uint8_t* state = AddressOf(info[0]);
  uint8_t* oldHash = state + kHashOffset;
  uint8_t* newHash = oldHash + 32;
  uint8_t* mask = state + kScratchOffset;
  bool ok = Hash(state, kPreKeyBytes, oldHash) && Random(mask, kPreKeyBytes);
  if (ok) {
    for (size_t i = 0; i < kPreKeyBytes; i += 1) state[i] ^= mask[i];
    ok = Hash(state, kPreKeyBytes, newHash);
    if (ok) {
      for (size_t i = 0; i < 32; i += 1) state[kRightOffset + i] ^= oldHash[i] ^ newHash[i];
    } else {
      for (size_t i = 0; i < kPreKeyBytes; i += 1) state[i] ^= mask[i];  // undo
    }
  }
  Wipe(oldHash, 64);
  Wipe(mask, kPreKeyBytes);
  return Status(info.Env(), ok ? 0 : -1);
}

void RegisterKey(Napi::Env env, Napi::Object& exports) {
  Export(env, exports, "random", RandomFill);
  Export(env, exports, "keyInit", KeyInit);
  Export(env, exports, "keyDerive", KeyDerive);
  Export(env, exports, "keyRekey", KeyRekey);
  Constant(exports, "KEY_STATE_BYTES", static_cast<int>(kKeyStateBytes));
  Constant(exports, "PRE_KEY_BYTES", static_cast<int>(kPreKeyBytes));
  Constant(exports, "KEY_OFFSET", static_cast<int>(kKeyOffset));
  Constant(exports, "KEY_BYTES", static_cast<int>(kKeyBytes));
}

}  // namespace memguard
