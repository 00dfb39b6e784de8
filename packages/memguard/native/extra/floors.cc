// The benchmark floors: a tiny interpreter that makes a given sequence of system calls on one
// anonymous mapping in a C loop, and times the loop in wall and thread CPU time. `secure-memory
// bench` describes each backend's own sequence (its allocation and free, or the protection pair and
// a read of every page of an access) as a script, so that each operation is measured against a floor
// doing exactly the same work in C. A development addon: built by the package's build script, never
// at install, never published (native/extra is left out of the package).
//
// TypeScript (src/floor.ts) validates every script before it calls here; this file checks again that
// every step stays inside the mapping, so that a bad script returns EINVAL and never faults. Each
// function returns a status: 0 or a negative errno.
#include <napi.h>

#include <openssl/evp.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

namespace {

// Step codes; each step is four int32: code, a, b, c (see src/floor.ts). The crypto steps use
// OpenSSL's EVP interface from the node binary, as memguard's addon does.
enum Step : int32_t {
  kMmap = 0,      // a pages, b protection: the mapping (private, anonymous)
  kMunmap = 1,    // a first page, b pages
  kMprotect = 2,  // a first page, b pages, c protection
  kMlock = 3,     // a first page, b pages
  kMunlock = 4,   // a first page, b pages
  kMadvise = 5,   // a first page, b pages, c advice
  kWrite = 6,     // a byte offset, b bytes: a copy of a pattern into the mapping
  kWipe = 7,      // a byte offset, b bytes: explicit_bzero
  kRead = 8,      // a first page, b pages: a read of one byte of every page
  kSeal = 9,      // a first page, b pages: ChaCha20-Poly1305 encryption in place (OpenSSL EVP), tag kept
  kOpen = 10,     // a first page, b pages, c first page of the output: decryption and tag check
  kSealBytes = 11,  // a offset, b bytes: kSeal of bytes (at most 4096)
  kOpenBytes = 12,  // a offset, b bytes, c offset of the output: kOpen of bytes (at most 4096)
  kSealTo = 13,     // a first page, b pages, c first page of the output: kSeal into other pages
};

struct Region {
  uint8_t* base = nullptr;
  size_t pages = 0;
};

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

uint8_t gPattern[4096];
volatile uint8_t gSink;
uint8_t gKey[32];
uint8_t gNonce[12];
uint8_t gTag[16];

const EVP_CIPHER* Aead() {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  return cipher;
#else
  return EVP_chacha20_poly1305();
#endif
}

// What memguard's seal and open do with OpenSSL, and nothing else: one EVP context per call.
int Crypt(bool seal, const uint8_t* in, uint8_t* out, size_t length) {
  const EVP_CIPHER* cipher = Aead();
  EVP_CIPHER_CTX* ctx = cipher == nullptr ? nullptr : EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return -ENOSYS;
  int n = 0, tail = 0;
  bool ok;
  if (seal) {
    ok = EVP_EncryptInit_ex(ctx, cipher, nullptr, gKey, gNonce) == 1 &&
         EVP_EncryptUpdate(ctx, out, &n, in, static_cast<int>(length)) == 1 && EVP_EncryptFinal_ex(ctx, out + n, &tail) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, sizeof gTag, gTag) == 1;
  } else {
    ok = EVP_DecryptInit_ex(ctx, cipher, nullptr, gKey, gNonce) == 1 &&
         EVP_DecryptUpdate(ctx, out, &n, in, static_cast<int>(length)) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, sizeof gTag, gTag) == 1 && EVP_DecryptFinal_ex(ctx, out + n, &tail) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -EBADMSG;
}

bool InPages(const Region& r, int32_t first, int32_t count) {
  return r.base != nullptr && first >= 0 && count > 0 && static_cast<size_t>(first) + static_cast<size_t>(count) <= r.pages;
}

// Any number of bytes inside the mapping (a wipe).
bool InMapping(const Region& r, int32_t offset, int32_t length) {
  return r.base != nullptr && offset >= 0 && length >= 0 && static_cast<size_t>(offset) + static_cast<size_t>(length) <= r.pages * PageSize();
}

// At most a pattern's worth of bytes inside the mapping (a write, a small seal or open).
bool InBytes(const Region& r, int32_t offset, int32_t length) {
  return length <= static_cast<int32_t>(sizeof gPattern) && InMapping(r, offset, length);
}

// Runs `count` steps; 0 or a negative errno.
int Run(Region& r, const int32_t* steps, size_t count) {
  const size_t page = PageSize();
  for (size_t i = 0; i < count; i += 1) {
    const int32_t* s = steps + 4 * i;
    const int32_t a = s[1], b = s[2], c = s[3];
    int rc = 0;
    switch (s[0]) {
      case kMmap: {
        if (r.base != nullptr || a <= 0 || a > 4096) return -EINVAL;
        void* p = mmap(nullptr, static_cast<size_t>(a) * page, b, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return -errno;
        r.base = static_cast<uint8_t*>(p);
        r.pages = static_cast<size_t>(a);
        break;
      }
      case kMunmap:
        if (!InPages(r, a, b) || a != 0 || static_cast<size_t>(b) != r.pages) return -EINVAL;
        rc = munmap(r.base, r.pages * page);
        r.base = nullptr;
        r.pages = 0;
        break;
      case kMprotect:
        if (!InPages(r, a, b)) return -EINVAL;
        rc = mprotect(r.base + a * page, b * page, c);
        break;
      case kMlock:
        if (!InPages(r, a, b)) return -EINVAL;
        rc = mlock(r.base + a * page, b * page);
        break;
      case kMunlock:
        if (!InPages(r, a, b)) return -EINVAL;
        rc = munlock(r.base + a * page, b * page);
        break;
      case kMadvise:
        if (!InPages(r, a, b)) return -EINVAL;
        rc = madvise(r.base + a * page, b * page, c);
        break;
      case kWrite:
        if (!InBytes(r, a, b)) return -EINVAL;
        memcpy(r.base + a, gPattern, static_cast<size_t>(b));
        break;
      case kWipe:
        if (!InMapping(r, a, b)) return -EINVAL;
        explicit_bzero(r.base + a, static_cast<size_t>(b));
        break;
      case kRead:
        if (!InPages(r, a, b)) return -EINVAL;
        for (int32_t p = 0; p < b; p += 1) gSink = r.base[(a + p) * page];
        break;
      case kSeal: {
        if (!InPages(r, a, b)) return -EINVAL;
        uint8_t* data = r.base + a * page;
        const int status = Crypt(true, data, data, b * page);
        if (status != 0) return status;
        break;
      }
      case kOpen: {
        if (!InPages(r, a, b) || !InPages(r, c, b)) return -EINVAL;
        const int status = Crypt(false, r.base + a * page, r.base + c * page, b * page);
        if (status != 0) return status;
        break;
      }
      case kSealTo: {
        if (!InPages(r, a, b) || !InPages(r, c, b)) return -EINVAL;
        const int status = Crypt(true, r.base + a * page, r.base + c * page, b * page);
        if (status != 0) return status;
        break;
      }
      case kSealBytes: {
        if (!InBytes(r, a, b)) return -EINVAL;
        const int status = Crypt(true, r.base + a, r.base + a, static_cast<size_t>(b));
        if (status != 0) return status;
        break;
      }
      case kOpenBytes: {
        if (!InBytes(r, a, b) || !InBytes(r, c, b)) return -EINVAL;
        const int status = Crypt(false, r.base + a, r.base + c, static_cast<size_t>(b));
        if (status != 0) return status;
        break;
      }
      default:
        return -EINVAL;
    }
    if (rc != 0) return -errno;
  }
  return 0;
}

double Clock(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// The steps of an Int32Array (four int32 each).
const int32_t* StepsOf(const Napi::Value& value, size_t* count) {
  Napi::TypedArrayOf<int32_t> array = value.As<Napi::TypedArrayOf<int32_t>>();
  *count = array.ElementLength() / 4;
  return array.Data();
}

// run(prologue, body, epilogue, iterations, out): the prologue once, the body `iterations` times, the
// epilogue once; out[0] and out[1] receive the wall and thread CPU nanoseconds of the body's loop.
// 0, or a negative errno (then the mapping, if any, is unmapped).
Napi::Value RunScript(const Napi::CallbackInfo& info) {
  size_t prologueCount = 0, bodyCount = 0, epilogueCount = 0;
  const int32_t* prologue = StepsOf(info[0], &prologueCount);
  const int32_t* body = StepsOf(info[1], &bodyCount);
  const int32_t* epilogue = StepsOf(info[2], &epilogueCount);
  const double iterations = info[3].As<Napi::Number>().DoubleValue();
  Napi::Float64Array out = info[4].As<Napi::Float64Array>();
  if (out.ElementLength() < 2) return Napi::Number::New(info.Env(), -EINVAL);
  Region region;
  int status = Run(region, prologue, prologueCount);
  const double wall = Clock(CLOCK_MONOTONIC);
  const double cpu = Clock(CLOCK_THREAD_CPUTIME_ID);
  for (double i = 0; i < iterations && status == 0; i += 1) status = Run(region, body, bodyCount);
  out[0] = Clock(CLOCK_MONOTONIC) - wall;
  out[1] = Clock(CLOCK_THREAD_CPUTIME_ID) - cpu;
  if (status == 0) status = Run(region, epilogue, epilogueCount);
  if (region.base != nullptr) munmap(region.base, region.pages * PageSize());
  return Napi::Number::New(info.Env(), status);
}

// threadCpuNs(): this thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID).
Napi::Value ThreadCpuNs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Clock(CLOCK_THREAD_CPUTIME_ID));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (size_t i = 0; i < sizeof gPattern; i += 1) gPattern[i] = static_cast<uint8_t>(i * 131 + 7);
  for (size_t i = 0; i < sizeof gKey; i += 1) gKey[i] = static_cast<uint8_t>(i * 37 + 1);  // not a secret: a floor's key
  exports.Set("run", Napi::Function::New(env, RunScript, "run"));
  exports.Set("threadCpuNs", Napi::Function::New(env, ThreadCpuNs, "threadCpuNs"));
  exports.Set("PAGE_SIZE", Napi::Number::New(env, static_cast<double>(PageSize())));
  return exports;
}

}  // namespace

NODE_API_MODULE(memguard_bench, Init)
