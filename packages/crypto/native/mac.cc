// HMAC and HKDF of the crypto addon, with libsodium's HMAC-SHA-256/512 states in the
// per-environment work page (locked, undumped), wiped after each call.
#include "addon.h"

#include <string.h>

namespace crypto_addon {

// One locked page per thread (per Node.js environment) holds the HMAC state and HKDF's working
// bytes while a call runs, and is wiped before the call returns.

struct Work {
  crypto_auth_hmacsha512_state hmac512;
  crypto_auth_hmacsha256_state hmac256;
  uint8_t prk[crypto_auth_hmacsha512_BYTES];
  uint8_t block[crypto_auth_hmacsha512_BYTES];
};

// The environment's work area, mapped on first use; nullptr with *failure set to { errno, syscall }.
Work* WorkOf(Napi::Env env, Napi::Value* failure) {
  EnvironmentData* data = EnvironmentOf(env);
  if (data->workPage == nullptr) {
    size_t length = RoundUp(sizeof(Work));
    uint8_t* page = nullptr;
    const char* failed = "";
    int error = MapLocked(length, &page, &failed);
    if (error != 0) {
      *failure = Failure(env, error, failed);
      return nullptr;
    }
    data->workPage = page;
    data->workLength = length;
  }
  return reinterpret_cast<Work*>(data->workPage);
}

size_t MacBytes(int hash) {
  return hash == kSha256 ? crypto_auth_hmacsha256_BYTES : crypto_auth_hmacsha512_BYTES;
}

// A part of an HMAC's message.
struct Part {
  const uint8_t* data;
  size_t length;
};

// HMAC(key, parts...) with one hash's init/update/final, the state in `state`, wiped after.
template <typename State>
void MacWith(State* state, int (*init)(State*, const unsigned char*, size_t),
             int (*update)(State*, const unsigned char*, unsigned long long), int (*final)(State*, unsigned char*),
             const uint8_t* key, size_t keyLength, const Part (&parts)[3], uint8_t* out) {
  init(state, key, keyLength);
  for (const Part& part : parts) {
    if (part.length > 0) update(state, part.data, part.length);
  }
  final(state, out);
  explicit_bzero(state, sizeof *state);
}

// HMAC(key, a ‖ b ‖ c) into out (MacBytes(hash) bytes), with the state in the work area.
void Mac(Work* work, int hash, const uint8_t* key, size_t keyLength, const uint8_t* a, size_t aLength,
         const uint8_t* b, size_t bLength, const uint8_t* c, size_t cLength, uint8_t* out) {
  const Part parts[3] = {{a, aLength}, {b, bLength}, {c, cLength}};
  if (hash == kSha256) {
    MacWith(&work->hmac256, crypto_auth_hmacsha256_init, crypto_auth_hmacsha256_update, crypto_auth_hmacsha256_final,
            key, keyLength, parts, out);
  } else {
    MacWith(&work->hmac512, crypto_auth_hmacsha512_init, crypto_auth_hmacsha512_update, crypto_auth_hmacsha512_final,
            key, keyLength, parts, out);
  }
}

// Runs `body(work, hash)` (hash: argument 0) with the environment's work area, then scrubs the
// stack: 0, or { errno, syscall } when the work area cannot be mapped.
template <typename Body>
Napi::Value WithWork(const Napi::CallbackInfo& info, Body body) {
  Napi::Env env = info.Env();
  int hash = info[0].As<Napi::Number>().Int32Value();
  Napi::Value failure;
  Work* work = WorkOf(env, &failure);
  if (work == nullptr) return failure;
  body(work, hash);
  Scrub();
  return Napi::Number::New(env, 0);
}

// hmac(hash, key, data, out): HMAC-SHA-256/512 of `data` under `key` (a view of a Secret) into
// `out` (32/64 bytes, checked). 0, or { errno, syscall } when the work area cannot be mapped.
Napi::Value Hmac(const Napi::CallbackInfo& info) {
  Bytes key = BytesOf(info[1]);
  Bytes data = BytesOf(info[2]);
  Bytes out = BytesOf(info[3]);
  return WithWork(info, [&](Work* work, int hash) {
    Mac(work, hash, key.data, key.length, data.data, data.length, nullptr, 0, nullptr, 0, out.data);
  });
}

// hkdf(hash, ikm, salt, info, out): HKDF (RFC 5869) of `ikm` (a view of a Secret) into `out` (a
// view of protected memory; 1..255*HashLen bytes, checked): PRK = HMAC(salt, IKM); T(i) =
// HMAC(PRK, T(i-1) ‖ info ‖ i). PRK and T live in the work area and are wiped.
// 0, or { errno, syscall } when the work area cannot be mapped.
Napi::Value Hkdf(const Napi::CallbackInfo& info) {
  Bytes ikm = BytesOf(info[1]);
  Bytes salt = BytesOf(info[2]);
  Bytes context = BytesOf(info[3]);
  Bytes out = BytesOf(info[4]);
  return WithWork(info, [&](Work* work, int hash) {
    size_t hashLength = MacBytes(hash);
    Mac(work, hash, salt.data, salt.length, ikm.data, ikm.length, nullptr, 0, nullptr, 0, work->prk);
    size_t done = 0;
    uint8_t counter = 0;
    while (done < out.length) {
      counter += 1;
      Mac(work, hash, work->prk, hashLength, work->block, counter == 1 ? 0 : hashLength, context.data,
          context.length, &counter, 1, work->block);
      size_t take = out.length - done < hashLength ? out.length - done : hashLength;
      memcpy(out.data + done, work->block, take);
      done += take;
    }
    explicit_bzero(work->prk, sizeof work->prk);
    explicit_bzero(work->block, sizeof work->block);
  });
}

}  // namespace crypto_addon
