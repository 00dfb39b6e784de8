// The libsodium calls of @secure-memory/crypto, the memory they work in, and nothing else.
//
// Key schedules and working state (AES-256-GCM's expanded key and GHASH powers, a ChaCha20 key,
// HMAC's inner and outer hash states, HKDF's pseudorandom key) live in pages this file maps
// privately, locks (mlock), excludes from core dumps (MADV_DONTDUMP), wipes on fork
// (MADV_WIPEONFORK, where the kernel has it) and wipes (explicit_bzero) when a state is done with
// (key states in slots of a per-environment pool, HMAC/HKDF state in a per-environment work page).
// Keys are read from the memory of the caller's Secret (a view valid only during the call) and
// never copied anywhere else. After each call that touched a key, the stack below the call is
// wiped and the vector registers zeroed, so that nothing the library left behind survives it
// (the addon is linked with -z now: no lazy-binding resolver saves registers on the stack).
//
// Every function makes the calls it is named after and returns a status: 0, -1, 1 for an
// authentication failure, { errno, syscall } for a failed system call, or a handle (an External
// type-tagged so that one kind of handle is never taken for another). TypeScript validates every argument before calling here
// (kinds, lengths, buffer sizes) and turns each status into a typed error. Nothing here aborts the
// process: an argument of the wrong type becomes a JavaScript exception (node-addon-api with C++
// exceptions), never an assertion. No primitive is written here: AEAD, HMAC and the CSPRNG are
// libsodium's; HKDF (RFC 5869) is two lines of composition over libsodium's HMAC states.
//
// One file a job: memory.cc (mappings, pool, scratch, scrub), aead.cc (key states, seal, open),
// mac.cc (HMAC, HKDF), addon.h what they share; this file exports the entry points.
#include "addon.h"

using namespace crypto_addon;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // sodium_init: 0 first time, 1 already done, -1 failure (reported as `ready: false`).
  int ready = sodium_init();
  exports.Set("ready", Napi::Boolean::New(env, ready >= 0));
  exports.Set("aesGcmAvailable", Napi::Boolean::New(env, ready >= 0 && crypto_aead_aes256gcm_is_available() == 1));
  exports.Set("sodiumVersion", Napi::String::New(env, sodium_version_string()));
  exports.Set("keyNew", Napi::Function::New(env, KeyNew, "keyNew"));
  exports.Set("keyFree", Napi::Function::New(env, KeyFree, "keyFree"));
  exports.Set("seal", Napi::Function::New(env, Seal, "seal"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("hmac", Napi::Function::New(env, Hmac, "hmac"));
  exports.Set("hkdf", Napi::Function::New(env, Hkdf, "hkdf"));
  exports.Set("scratchNew", Napi::Function::New(env, ScratchNew, "scratchNew"));
  exports.Set("scratchFree", Napi::Function::New(env, ScratchFree, "scratchFree"));
  exports.Set("SLOT_BYTES", Napi::Number::New(env, static_cast<double>(kSlotBytes)));
  exports.Set("POOL_CHUNK_BYTES", Napi::Number::New(env, static_cast<double>(kChunkBytes)));
  return exports;
}

NODE_API_MODULE(crypto, Init)
