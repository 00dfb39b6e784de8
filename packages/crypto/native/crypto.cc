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
#include <napi.h>
#include <sodium.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

#include "secure_memory_linux.h"  // from @secure-memory/addon-build: MADV_* for older C libraries

namespace {

enum Kind { kAes256Gcm = 0, kChacha20Poly1305 = 1, kXChacha20Poly1305 = 2 };
enum Hash { kSha256 = 0, kSha512 = 1 };

size_t PageSize() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t RoundUp(size_t length) {
  size_t page = PageSize();
  return (length + page - 1) / page * page;
}

// Wipes the stack below the caller's frame: what a library call left there (spilled registers,
// block buffers) is gone when the call returns. noinline so that the array is below the caller.
// libsodium's functions use well under 8 KiB of stack; the addon is linked with -z now, so no lazy
// symbol binding (whose resolver saves every vector register on the stack) runs below it.
__attribute__((noinline)) void WipeStack() {
  volatile uint8_t area[8192];
  explicit_bzero(const_cast<uint8_t*>(area), sizeof area);
  __asm__ __volatile__("" : : "r"(area) : "memory");
}

// Zeroes the vector registers, which the library (and the copy of a key into its state) leave
// holding key bytes: anything that saves them later (a signal frame on the stack, a resolver)
// would write them into ordinary memory.
void WipeVectorRegisters() {
#if defined(__x86_64__)
  static const bool avx = __builtin_cpu_supports("avx");
  if (avx) {
    __asm__ __volatile__("vzeroall" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                         "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  } else {
    __asm__ __volatile__(
        "pxor %%xmm0, %%xmm0\n pxor %%xmm1, %%xmm1\n pxor %%xmm2, %%xmm2\n pxor %%xmm3, %%xmm3\n"
        "pxor %%xmm4, %%xmm4\n pxor %%xmm5, %%xmm5\n pxor %%xmm6, %%xmm6\n pxor %%xmm7, %%xmm7\n"
        "pxor %%xmm8, %%xmm8\n pxor %%xmm9, %%xmm9\n pxor %%xmm10, %%xmm10\n pxor %%xmm11, %%xmm11\n"
        "pxor %%xmm12, %%xmm12\n pxor %%xmm13, %%xmm13\n pxor %%xmm14, %%xmm14\n pxor %%xmm15, %%xmm15\n" ::
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
              "xmm12", "xmm13", "xmm14", "xmm15");
  }
#elif defined(__aarch64__)
  __asm__ __volatile__(
      "movi v0.16b, #0\n movi v1.16b, #0\n movi v2.16b, #0\n movi v3.16b, #0\n movi v4.16b, #0\n movi v5.16b, #0\n"
      "movi v6.16b, #0\n movi v7.16b, #0\n movi v16.16b, #0\n movi v17.16b, #0\n movi v18.16b, #0\n"
      "movi v19.16b, #0\n movi v20.16b, #0\n movi v21.16b, #0\n movi v22.16b, #0\n movi v23.16b, #0\n"
      "movi v24.16b, #0\n movi v25.16b, #0\n movi v26.16b, #0\n movi v27.16b, #0\n movi v28.16b, #0\n"
      "movi v29.16b, #0\n movi v30.16b, #0\n movi v31.16b, #0\n" ::
          : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23",
            "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
#endif
}

// After every call that touched a key: the stack below and the vector registers hold nothing of it.
__attribute__((noinline)) void Scrub() {
  WipeStack();
  WipeVectorRegisters();
}

// A private anonymous mapping of `length` bytes (a multiple of the page size), read-write, locked,
// not dumped, wiped on fork. Returns 0 and sets *out, or the errno of the call that failed (the
// mapping is then released). *failed names that call.
int MapLocked(size_t length, uint8_t** out, const char** failed) {
  void* address = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (address == MAP_FAILED) {
    *failed = "mmap";
    return errno;
  }
  if (madvise(address, length, MADV_DONTDUMP) != 0) {
    int error = errno;
    munmap(address, length);
    *failed = "madvise";
    return error;
  }
  if (mlock(address, length) != 0) {
    int error = errno;
    munmap(address, length);
    *failed = "mlock";
    return error;
  }
  madvise(address, length, MADV_WIPEONFORK);  // best effort: EINVAL before Linux 4.14
  *out = static_cast<uint8_t*>(address);
  return 0;
}

void UnmapWiped(uint8_t* address, size_t length) {
  explicit_bzero(address, length);
  munlock(address, length);
  munmap(address, length);
}

Napi::Value Failure(Napi::Env env, int error, const char* syscall) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("errno", Napi::Number::New(env, error));
  result.Set("syscall", Napi::String::New(env, syscall));
  return result;
}

// The bytes of a Uint8Array argument (a Buffer is one). TypeScript checked the type.
struct Bytes {
  uint8_t* data;
  size_t length;
};

Bytes BytesOf(const Napi::Value& value) {
  if (value.IsUndefined() || value.IsNull()) return {nullptr, 0};
  Napi::Uint8Array array = value.As<Napi::Uint8Array>();
  return {array.Data(), array.ByteLength()};
}

// --- The slot pool and the per-environment data --------------------------------------------------
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
uint8_t* SlotTake(Pool* pool, int* error, const char** failed) {
  if (pool->free.empty()) {
    uint8_t* chunk = nullptr;
    *error = MapLocked(kChunkBytes, &chunk, failed);
    if (*error != 0) return nullptr;
    pool->chunks.push_back(chunk);
    for (size_t offset = kChunkBytes; offset >= kSlotBytes; offset -= kSlotBytes) pool->free.push_back(chunk + offset - kSlotBytes);
  }
  uint8_t* slot = pool->free.back();
  pool->free.pop_back();
  pool->live += 1;
  return slot;
}

// Wipes a slot and gives it back; frees the pool when it was the last one of an ended environment.
void SlotGive(Pool* pool, uint8_t* slot) {
  explicit_bzero(slot, kSlotBytes);
  pool->free.push_back(slot);
  pool->live -= 1;
  if (!pool->environmentAlive && pool->live == 0) delete pool;
}

struct Work;

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

EnvironmentData* EnvironmentOf(Napi::Env env) {
  EnvironmentData* data = env.GetInstanceData<EnvironmentData>();
  if (data == nullptr) {
    data = new EnvironmentData();
    env.SetInstanceData<EnvironmentData>(data);
  }
  return data;
}

// --- AEAD keys ------------------------------------------------------------------------------------
//
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

Napi::Value Tag(Napi::Value value, const napi_type_tag* tag) {
  NAPI_THROW_IF_FAILED(value.Env(), napi_type_tag_object(value.Env(), value, tag), Napi::Value());
  return value;
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

// --- HMAC and HKDF --------------------------------------------------------------------------------
//
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

// --- Scratch memory -------------------------------------------------------------------------------
//
// For factories that cannot be filled in place: a locked, not dumped mapping that receives an
// unwrapped or derived key, handed to `factory.new()` (which copies it and zero-fills the view),
// then wiped and unmapped. The view is an external ArrayBuffer that scratchFree detaches.

struct Scratch {
  uint8_t* page;  // nullptr once released
  size_t length;  // of the mapping; 0 for a slot
  Pool* pool;     // the slot's pool; nullptr for a mapping of its own
};

void ReleaseScratch(Scratch* scratch) {
  if (scratch->page == nullptr) return;
  if (scratch->pool != nullptr) SlotGive(scratch->pool, scratch->page);
  else UnmapWiped(scratch->page, scratch->length);
  scratch->page = nullptr;
}

void FinalizeScratch(Napi::Env, Scratch* scratch) {
  ReleaseScratch(scratch);
  delete scratch;
}

// scratchNew(size): { buffer, handle }: an ArrayBuffer of `size` bytes over a slot (up to 512
// bytes) or a fresh locked mapping, and the External that owns it (the garbage collector releases
// it if scratchFree is never called); or { errno, syscall }.
Napi::Value ScratchNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t size = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  uint8_t* page = nullptr;
  const char* failed = "";
  int error = 0;
  Scratch* scratch;
  if (size <= kSlotBytes) {
    Pool* pool = EnvironmentOf(env)->pool;
    page = SlotTake(pool, &error, &failed);
    if (page == nullptr) return Failure(env, error, failed);
    scratch = new Scratch{page, 0, pool};
  } else {
    size_t length = RoundUp(size);
    error = MapLocked(length, &page, &failed);
    if (error != 0) return Failure(env, error, failed);
    scratch = new Scratch{page, length, nullptr};
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", Tag(Napi::External<Scratch>::New(env, scratch, FinalizeScratch), &kScratchTag));
  result.Set("buffer", Napi::ArrayBuffer::New(env, page, size));
  return result;
}

// scratchFree(buffer, handle): detaches the ArrayBuffer, then wipes and releases the memory (idempotent).
Napi::Value ScratchFree(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  Scratch* scratch = Tagged<Scratch>(info[1], &kScratchTag);
  if (!buffer.IsDetached()) buffer.Detach();
  ReleaseScratch(scratch);
  return info.Env().Undefined();
}

}  // namespace

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
