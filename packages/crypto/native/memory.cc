// The memory of the crypto addon: locked, undumped mappings, the per-environment slot pool and
// work page, scratch memory handed to JavaScript, and the stack and register scrub after each call
// that touched a key. Each function makes the calls it is named after and returns a status.
#include "addon.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secure_memory_linux.h"  // from @secure-memory/addon-build: MADV_* for older C libraries

namespace crypto_addon {

namespace {

size_t PageSize() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

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

Bytes BytesOf(const Napi::Value& value) {
  if (value.IsUndefined() || value.IsNull()) return {nullptr, 0};
  Napi::Uint8Array array = value.As<Napi::Uint8Array>();
  return {array.Data(), array.ByteLength()};
}

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

void SlotGive(Pool* pool, uint8_t* slot) {
  explicit_bzero(slot, kSlotBytes);
  pool->free.push_back(slot);
  pool->live -= 1;
  if (!pool->environmentAlive && pool->live == 0) delete pool;
}

EnvironmentData* EnvironmentOf(Napi::Env env) {
  EnvironmentData* data = env.GetInstanceData<EnvironmentData>();
  if (data == nullptr) {
    data = new EnvironmentData();
    env.SetInstanceData<EnvironmentData>(data);
  }
  return data;
}

Napi::Value Tag(Napi::Value value, const napi_type_tag* tag) {
  NAPI_THROW_IF_FAILED(value.Env(), napi_type_tag_object(value.Env(), value, tag), Napi::Value());
  return value;
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

}  // namespace crypto_addon
