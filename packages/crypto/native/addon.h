// What the files of the crypto addon share: the kinds, the memory they work in (locked mappings,
// the per-environment slot pool and work page), the stack scrub, argument and status helpers, and
// the entry points crypto.cc exports. One file a job: memory.cc (mappings, pool, scratch, scrub),
// aead.cc (key states, seal, open), mac.cc (HMAC, HKDF).
#ifndef SECURE_MEMORY_CRYPTO_ADDON_H_
#define SECURE_MEMORY_CRYPTO_ADDON_H_

#include <napi.h>
#include <sodium.h>

#include <stddef.h>
#include <stdint.h>

#include <vector>

namespace crypto_addon {

enum Kind { kAes256Gcm = 0, kChacha20Poly1305 = 1, kXChacha20Poly1305 = 2 };
enum Hash { kSha256 = 0, kSha512 = 1 };

// --- memory.cc ------------------------------------------------------------------------------------

// `length` rounded up to whole pages.
size_t RoundUp(size_t length);

// After every call that touched a key: the stack below and the vector registers hold nothing of it.
void Scrub();

// A private anonymous mapping of `length` bytes (a multiple of the page size), read-write, locked,
// not dumped, wiped on fork. Returns 0 and sets *out, or the errno of the call that failed (the
// mapping is then released). *failed names that call.
int MapLocked(size_t length, uint8_t** out, const char** failed);

// Wipes, unlocks and unmaps a mapping of MapLocked.
void UnmapWiped(uint8_t* address, size_t length);

// The status of a failed system call: { errno, syscall }.
Napi::Value Failure(Napi::Env env, int error, const char* syscall);

// The bytes of a Uint8Array argument (a Buffer is one). TypeScript checked the type.
struct Bytes {
  uint8_t* data;
  size_t length;
};

Bytes BytesOf(const Napi::Value& value);

// The slot pool and the per-environment data.
//
// Key states and small scratch buffers take 512-byte slots of 16 KiB chunks that are mapped,
// locked, left out of core dumps and wiped on fork once, and kept for the environment (thread):
// no system call per aead or per unwrap. A slot is wiped when it is given back. The pool lives
// until the environment ends and its last slot is given back, in whichever order the two happen.

constexpr size_t kSlotBytes = 512;
constexpr size_t kChunkBytes = 16384;
static_assert(sizeof(crypto_aead_aes256gcm_state) <= kSlotBytes, "an AES-256-GCM state fits a slot");

struct Pool {
  std::vector<uint8_t*> chunks;
  std::vector<uint8_t*> free;
  size_t live = 0;
  bool environmentAlive = true;
  ~Pool() {
    for (uint8_t* chunk : chunks) UnmapWiped(chunk, kChunkBytes);
  }
};

// A slot, or nullptr with *error and *failed set (the pool could not grow).
uint8_t* SlotTake(Pool* pool, int* error, const char** failed);

// Wipes a slot and gives it back; frees the pool when it was the last one of an ended environment.
void SlotGive(Pool* pool, uint8_t* slot);

// What each environment (the main thread, each worker) keeps: the pool and the HMAC/HKDF work page.
struct EnvironmentData {
  Pool* pool = new Pool();
  uint8_t* workPage = nullptr;
  size_t workLength = 0;
  ~EnvironmentData() {
    if (workPage != nullptr) UnmapWiped(workPage, workLength);
    pool->environmentAlive = false;
    if (pool->live == 0) delete pool;
  }
};

EnvironmentData* EnvironmentOf(Napi::Env env);

// Type tags of the Externals this file hands out, so that one kind is never taken for another.
const napi_type_tag kKeyTag = {0x5ec7e7a11c7a9e01ULL, 0x8d1e6b4a2f3c7e01ULL};
const napi_type_tag kScratchTag = {0x5ec7e7a11c7a9e02ULL, 0x8d1e6b4a2f3c7e02ULL};

// The External's data when `value` is an External this file made with `tag`; else a TypeError.
template <typename T>
T* Tagged(const Napi::Value& value, const napi_type_tag* tag) {
  bool matches = false;
  if (napi_check_object_type_tag(value.Env(), value, tag, &matches) != napi_ok || !matches) {
    throw Napi::TypeError::New(value.Env(), "not a handle of this addon");
  }
  return value.As<Napi::External<T>>().Data();
}

// Tags an External this file made.
Napi::Value Tag(Napi::Value value, const napi_type_tag* tag);

// --- The entry points (crypto.cc exports them) ----------------------------------------------------

Napi::Value KeyNew(const Napi::CallbackInfo& info);
Napi::Value KeyFree(const Napi::CallbackInfo& info);
Napi::Value Seal(const Napi::CallbackInfo& info);
Napi::Value Open(const Napi::CallbackInfo& info);
Napi::Value Hmac(const Napi::CallbackInfo& info);
Napi::Value Hkdf(const Napi::CallbackInfo& info);
Napi::Value ScratchNew(const Napi::CallbackInfo& info);
Napi::Value ScratchFree(const Napi::CallbackInfo& info);

}  // namespace crypto_addon

#endif  // SECURE_MEMORY_CRYPTO_ADDON_H_
