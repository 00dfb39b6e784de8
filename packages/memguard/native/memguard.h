// What the sources of the memguard addon share: argument and status helpers, the fault seam in front
// of each system call (inert and compiled out of the release addon: see extra/faults.cc), the mappings
// listed per environment, the key state's layout, and each source's Register* function, which adds
// its functions to the addon's exports (memguard.cc). Every function takes arguments TypeScript
// validated and returns a status; nothing here aborts the process.
#ifndef MEMGUARD_NATIVE_MEMGUARD_H_
#define MEMGUARD_NATIVE_MEMGUARD_H_

#include <napi.h>

#include <errno.h>
#include <map>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>
#if defined(MEMGUARD_TEST_SEAM)
#include <atomic>
#endif

namespace memguard {

// An address that TypeScript got from Map() (a BigInt).
inline uint8_t* AddressOf(const Napi::Value& value) {
  bool lossless = false;
  uint64_t raw = value.As<Napi::BigInt>().Uint64Value(&lossless);
  return reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(raw));
}

// A length in bytes (a Number that TypeScript checked to be a whole, non-negative, safe integer).
inline size_t LengthOf(const Napi::Value& value) {
  return static_cast<size_t>(value.As<Napi::Number>().Int64Value());
}

inline Napi::Number Status(Napi::Env env, int status) {
  return Napi::Number::New(env, status);
}

// 0 when `rc` is 0, else the errno the call left. Call it right after the system call.
inline int ErrnoOf(int rc) {
  return rc == 0 ? 0 : errno;
}

inline void Wipe(uint8_t* address, size_t length) {
#if defined(__GLIBC__) || defined(__linux__) || defined(__OpenBSD__) || defined(__FreeBSD__)
  explicit_bzero(address, length);
#else
  volatile uint8_t* p = address;
  while (length-- > 0) *p++ = 0;
#endif
}

// The status of a call on the range at (info[0], info[1]): 0, or the errno it left.
template <typename Call>
Napi::Value RangeStatus(const Napi::CallbackInfo& info, Call call) {
  return Status(info.Env(), ErrnoOf(call(AddressOf(info[0]), LengthOf(info[1]))));
}

// Sets `exports[name]` to a Number.
inline void Constant(Napi::Object& exports, const char* name, int value) {
  exports.Set(name, Napi::Number::New(exports.Env(), value));
}

// Sets `exports[name]` to the function `fn`.
inline void Export(Napi::Env env, Napi::Object& exports, const char* name, Napi::Function::Callback fn) {
  exports.Set(name, Napi::Function::New(env, fn, name));
}

// --- Fault injection ------------------------------------------------------------------------------
//
// A seam in front of every system call this file makes for buffers, the pool and the key state, and
// in front of the OpenSSL seal and open: for this package's tests, which must see each failure path
// taken. It is compiled only into the test build (MEMGUARD_TEST_SEAM), where it is inert unless
// armed (faultArm/faultSet, reached from JavaScript only through test/support's test hooks); in the
// release addon Fault() is a constant and each Seam* wrapper is the bare call. Armed, it counts the calls of each kind and makes the chosen kind fail with the chosen errno
// (errno set, -1 or MAP_FAILED returned, exactly as the call would) after `after` calls, `count`
// times (a negative count: every call). errno 0 makes the call be skipped and report success (the
// test hooks allow it for madvise only: a kernel that ignores the advice, for the core-dump control
// test). The state is process-wide. Not seamed: the munmap that undoes a half-made secret-memory reservation.

enum FaultCall {
  kFaultMmap,
  kFaultMunmap,
  kFaultMprotect,
  kFaultMlock,
  kFaultMlock2,
  kFaultMunlock,
  kFaultMadvise,
  kFaultMemfdSecret,
  kFaultFtruncate,
  kFaultSeal,
  kFaultOpen,
  kFaultCallCount
};

#if defined(MEMGUARD_TEST_SEAM)
extern std::atomic<bool> gFaultsArmed;
constexpr int kMakeCall = 0;
constexpr int kSkipCall = -1;
// Counts the call and says what to do: kMakeCall, kSkipCall, or the errno to fail with (extra/faults.cc).
int FaultArmed(FaultCall call);

inline int Fault(FaultCall call) {
  if (__builtin_expect(!gFaultsArmed.load(std::memory_order_relaxed), 1)) return kMakeCall;
  return FaultArmed(call);
}
#else
constexpr int kMakeCall = 0;
constexpr int kSkipCall = -1;
inline int Fault(FaultCall) { return kMakeCall; }
#endif  // MEMGUARD_TEST_SEAM

// What a call the seam intercepted returns: 0 when skipped, else -1 with errno set.
inline int Injected(int fault) {
  if (fault == kSkipCall) return 0;
  errno = fault;
  return -1;
}

inline void* SeamMmap(void* address, size_t length, int prot, int flags, int fd, off_t offset) {
  int fault = Fault(kFaultMmap);
  if (fault == kMakeCall) return mmap(address, length, prot, flags, fd, offset);
  errno = fault == kSkipCall ? EINVAL : fault;  // a mapping cannot be skipped
  return MAP_FAILED;
}

inline int SeamMunmap(void* address, size_t length) {
  int fault = Fault(kFaultMunmap);
  return fault == kMakeCall ? munmap(address, length) : Injected(fault);
}

inline int SeamMprotect(void* address, size_t length, int prot) {
  int fault = Fault(kFaultMprotect);
  return fault == kMakeCall ? mprotect(address, length, prot) : Injected(fault);
}

inline int SeamMlock(const void* address, size_t length) {
  int fault = Fault(kFaultMlock);
  return fault == kMakeCall ? mlock(address, length) : Injected(fault);
}

inline int SeamMunlock(const void* address, size_t length) {
  int fault = Fault(kFaultMunlock);
  return fault == kMakeCall ? munlock(address, length) : Injected(fault);
}

inline int SeamMadvise(void* address, size_t length, int advice) {
  int fault = Fault(kFaultMadvise);
  return fault == kMakeCall ? madvise(address, length, advice) : Injected(fault);
}

inline int SeamFtruncate(int fd, off_t length) {
  int fault = Fault(kFaultFtruncate);
  return fault == kMakeCall ? ftruncate(fd, length) : Injected(fault);
}

// --- Mappings of each environment (memory.cc) ---------------------------------------------------

struct EnvMappings {
  napi_env env;
  std::map<uintptr_t, size_t> live;  // base address -> total length
  std::vector<double> releasedViews;  // tokens of views whose memory no ArrayBuffer references any more
};

EnvMappings* MappingsOf(Napi::Env env);
// Lists a mapping in its environment until it is unmapped; takes it off the list.
void Listed(Napi::Env env, void* base, size_t total);
void Unlisted(Napi::Env env, void* base);
// The environment is ending: wipes and unmaps every listed mapping (memory.cc).
void WipeEnvironment(void* arg);

// --- The key state's layout (key.cc, aead.cc) ---------------------------------------------------
//
//   [pre-key: 16 KiB][right: 32][key: 32][hash: 2 x 32][scratch: 16 KiB]

constexpr size_t kPreKeyBytes = 16384;
constexpr size_t kRightOffset = kPreKeyBytes;
constexpr size_t kKeyOffset = kRightOffset + 32;
constexpr size_t kHashOffset = kKeyOffset + 32;
constexpr size_t kScratchOffset = kHashOffset + 64;
constexpr size_t kScratchBytes = kPreKeyBytes;
constexpr size_t kKeyStateBytes = kScratchOffset + kScratchBytes;
constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// Each source adds its functions (and constants) to the addon's exports.
void RegisterMemory(Napi::Env env, Napi::Object& exports);
void RegisterKey(Napi::Env env, Napi::Object& exports);
void RegisterAead(Napi::Env env, Napi::Object& exports);
#if defined(MEMGUARD_TEST_SEAM)
void RegisterFaults(Napi::Env env, Napi::Object& exports);
#endif

}  // namespace memguard

#endif  // MEMGUARD_NATIVE_MEMGUARD_H_
