// The AEAD keys of the crypto addon: key states in pool slots, seal and open with libsodium's
// AES-256-GCM, ChaCha20-Poly1305 and XChaCha20-Poly1305. Every call that touched a key scrubs.
#include "addon.h"

#include <string.h>

namespace crypto_addon {

// One slot per key: for AES-256-GCM libsodium's precomputed state (expanded key and GHASH powers),
// for the ChaCha20 constructions the 32-byte key itself (they have no precomputation).

struct KeyState {
  uint8_t* page;  // the slot; nullptr once given back
  Pool* pool;
  int kind;
};

void FinalizeKey(Napi::Env, KeyState* state) {
  if (state->page != nullptr) SlotGive(state->pool, state->page);
  delete state;
}

KeyState* KeyOf(const Napi::Value& value) {
  return Tagged<KeyState>(value, &kKeyTag);
}

// keyNew(kind, key): the key state (an External, wiped and given back by keyFree or by the garbage
// collector), or { errno, syscall } when the pool cannot grow.
Napi::Value KeyNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int kind = info[0].As<Napi::Number>().Int32Value();
  Bytes key = BytesOf(info[1]);
  Pool* pool = EnvironmentOf(env)->pool;
  int error = 0;
  const char* failed = "";
  uint8_t* page = SlotTake(pool, &error, &failed);
  if (page == nullptr) return Failure(env, error, failed);
  if (kind == kAes256Gcm) {
    crypto_aead_aes256gcm_beforenm(reinterpret_cast<crypto_aead_aes256gcm_state*>(page), key.data);
  } else {
    memcpy(page, key.data, crypto_aead_chacha20poly1305_ietf_KEYBYTES);
  }
  Scrub();
  KeyState* state = new KeyState{page, pool, kind};
  return Tag(Napi::External<KeyState>::New(env, state, FinalizeKey), &kKeyTag);
}

// keyFree(state): wipes and gives the slot back now (idempotent).
Napi::Value KeyFree(const Napi::CallbackInfo& info) {
  KeyState* state = KeyOf(info[0]);
  if (state->page != nullptr) {
    SlotGive(state->pool, state->page);
    state->page = nullptr;
  }
  return info.Env().Undefined();
}

size_t NonceBytes(int kind) {
  switch (kind) {
    case kAes256Gcm: return crypto_aead_aes256gcm_NPUBBYTES;
    case kChacha20Poly1305: return crypto_aead_chacha20poly1305_ietf_NPUBBYTES;
    default: return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  }
}

// The arguments of seal and open: the key state, the input, the additional data, the output.
struct AeadArgs {
  KeyState* state;
  Bytes input;
  Bytes aad;
  Bytes output;
};

AeadArgs AeadArgsOf(const Napi::CallbackInfo& info) {
  return AeadArgs{KeyOf(info[0]), BytesOf(info[1]), BytesOf(info[2]), BytesOf(info[3])};
}

// seal(state, message, aad, box): a fresh random nonce into box[0..n), then ciphertext and tag.
// `message` may be a view of a Secret's memory. box.length == n + message.length + 16 (checked).
// 0, or -1 when the library refused.
Napi::Value Seal(const Napi::CallbackInfo& info) {
  auto [state, message, aad, box] = AeadArgsOf(info);
  if (state->page == nullptr) return Napi::Number::New(info.Env(), -1);
  size_t n = NonceBytes(state->kind);
  uint8_t* nonce = box.data;
  uint8_t* out = box.data + n;
  uint8_t empty = 0;
  if (message.data == nullptr) message.data = &empty;  // an empty message
  randombytes_buf(nonce, n);
  unsigned long long written = 0;
  int rc;
  switch (state->kind) {
    case kAes256Gcm:
      rc = crypto_aead_aes256gcm_encrypt_afternm(out, &written, message.data, message.length, aad.data, aad.length,
                                                 nullptr, nonce,
                                                 reinterpret_cast<const crypto_aead_aes256gcm_state*>(state->page));
      break;
    case kChacha20Poly1305:
      rc = crypto_aead_chacha20poly1305_ietf_encrypt(out, &written, message.data, message.length, aad.data, aad.length,
                                                     nullptr, nonce, state->page);
      break;
    default:
      rc = crypto_aead_xchacha20poly1305_ietf_encrypt(out, &written, message.data, message.length, aad.data,
                                                      aad.length, nullptr, nonce, state->page);
      break;
  }
  Scrub();
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : -1);
}

// open(state, box, aad, out): checks the tag and decrypts into `out` (a view of protected scratch
// memory, or of a new Secret's region, or an ordinary buffer for plaintext). out.length ==
// box.length - n - 16 (checked). 0; 1 when the tag does not match (out is then zeroed).
Napi::Value Open(const Napi::CallbackInfo& info) {
  auto [state, box, aad, out] = AeadArgsOf(info);
  if (state->page == nullptr) return Napi::Number::New(info.Env(), -1);
  size_t n = NonceBytes(state->kind);
  uint8_t empty = 0;
  if (out.data == nullptr) out.data = &empty;  // an empty message
  const uint8_t* nonce = box.data;
  const uint8_t* body = box.data + n;
  unsigned long long bodyLength = box.length - n;
  unsigned long long written = 0;
  int rc;
  switch (state->kind) {
    case kAes256Gcm:
      rc = crypto_aead_aes256gcm_decrypt_afternm(out.data, &written, nullptr, body, bodyLength, aad.data, aad.length,
                                                 nonce,
                                                 reinterpret_cast<const crypto_aead_aes256gcm_state*>(state->page));
      break;
    case kChacha20Poly1305:
      rc = crypto_aead_chacha20poly1305_ietf_decrypt(out.data, &written, nullptr, body, bodyLength, aad.data,
                                                     aad.length, nonce, state->page);
      break;
    default:
      rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out.data, &written, nullptr, body, bodyLength, aad.data,
                                                      aad.length, nonce, state->page);
      break;
  }
  if (rc != 0) explicit_bzero(out.data, out.length);
  Scrub();
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : 1);
}

}  // namespace crypto_addon
