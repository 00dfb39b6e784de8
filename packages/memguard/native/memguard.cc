// The system calls of @secure-memory/memguard, and the OpenSSL calls of its Enclaves, and nothing else.
//
// Every function makes the calls it is named after and returns a status: 0 or an errno, a byte
// count or a negative errno, an address (BigInt) or an errno (Number). TypeScript validates every
// argument before it calls here and turns each status into an error. Nothing in this file aborts
// the process: an argument of the wrong type becomes a JavaScript exception (node-addon-api with
// C++ exceptions), never an assertion.
//
// Cryptography is OpenSSL's, reached through the EVP interface of the OpenSSL that Node.js is built
// with (the node binary exports its symbols; the headers are installed in <prefix>/include/node).
// No primitive is written here.
//
// Tests reach the failure paths through a fault seam in front of each call (see "Fault injection"),
// compiled only into the test build (MEMGUARD_TEST_SEAM: the `memguard_test` target of binding.gyp,
// configured only when MEMGUARD_TEST_BUILD=1), never into the addon users install. The benchmark
// floors are another addon (native/extra/floors.cc), never published.
#include <napi.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <errno.h>
#include <atomic>
#include <map>
#include <vector>
#include <mutex>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#ifndef MADV_DONTDUMP
#define MADV_DONTDUMP 16
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_DONTFORK
#define MADV_DONTFORK 10
#endif
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#endif

namespace {

// An address that TypeScript got from Map() (a BigInt).
uint8_t* AddressOf(const Napi::Value& value) {
  bool lossless = false;
  uint64_t raw = value.As<Napi::BigInt>().Uint64Value(&lossless);
  return reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(raw));
}

// A length in bytes (a Number that TypeScript checked to be a whole, non-negative, safe integer).
size_t LengthOf(const Napi::Value& value) {
  return static_cast<size_t>(value.As<Napi::Number>().Int64Value());
}

Napi::Number Status(Napi::Env env, int status) {
  return Napi::Number::New(env, status);
}

// 0 when `rc` is 0, else the errno the call left. Call it right after the system call.
int ErrnoOf(int rc) {
  return rc == 0 ? 0 : errno;
}

void Wipe(uint8_t* address, size_t length) {
#if defined(__GLIBC__) || defined(__linux__) || defined(__OpenBSD__) || defined(__FreeBSD__)
  explicit_bzero(address, length);
#else
  volatile uint8_t* p = address;
  while (length-- > 0) *p++ = 0;
#endif
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
const char* const kFaultNames[kFaultCallCount] = {
    "mmap", "munmap", "mprotect", "mlock", "mlock2", "munlock", "madvise", "memfd_secret", "ftruncate", "seal", "open"};

struct FaultRule {
  int error;     // the errno to fail with; 0: skip the call and report success
  double after;  // calls to let through first
  double count;  // failures left; negative: every call
};

std::atomic<bool> gFaultsArmed{false};
std::mutex gFaultMutex;
FaultRule gFaultRules[kFaultCallCount];
double gFaultCalls[kFaultCallCount];

constexpr int kMakeCall = 0;
constexpr int kSkipCall = -1;

// Counts the call and says what to do: kMakeCall, kSkipCall, or the errno to fail with.
int FaultArmed(FaultCall call) {
  std::lock_guard<std::mutex> hold(gFaultMutex);
  gFaultCalls[call] += 1;
  FaultRule& rule = gFaultRules[call];
  if (rule.count == 0) return kMakeCall;
  if (rule.after > 0) {
    rule.after -= 1;
    return kMakeCall;
  }
  if (rule.count > 0) rule.count -= 1;
  return rule.error == 0 ? kSkipCall : rule.error;
}

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
int Injected(int fault) {
  if (fault == kSkipCall) return 0;
  errno = fault;
  return -1;
}

void* SeamMmap(void* address, size_t length, int prot, int flags, int fd, off_t offset) {
  int fault = Fault(kFaultMmap);
  if (fault == kMakeCall) return mmap(address, length, prot, flags, fd, offset);
  errno = fault == kSkipCall ? EINVAL : fault;  // a mapping cannot be skipped
  return MAP_FAILED;
}

int SeamMunmap(void* address, size_t length) {
  int fault = Fault(kFaultMunmap);
  return fault == kMakeCall ? munmap(address, length) : Injected(fault);
}

int SeamMprotect(void* address, size_t length, int prot) {
  int fault = Fault(kFaultMprotect);
  return fault == kMakeCall ? mprotect(address, length, prot) : Injected(fault);
}

int SeamMlock(const void* address, size_t length) {
  int fault = Fault(kFaultMlock);
  return fault == kMakeCall ? mlock(address, length) : Injected(fault);
}

int SeamMunlock(const void* address, size_t length) {
  int fault = Fault(kFaultMunlock);
  return fault == kMakeCall ? munlock(address, length) : Injected(fault);
}

int SeamMadvise(void* address, size_t length, int advice) {
  int fault = Fault(kFaultMadvise);
  return fault == kMakeCall ? madvise(address, length, advice) : Injected(fault);
}

int SeamFtruncate(int fd, off_t length) {
  int fault = Fault(kFaultFtruncate);
  return fault == kMakeCall ? ftruncate(fd, length) : Injected(fault);
}

#if defined(MEMGUARD_TEST_SEAM)
// faultArm(): arms the seam with no fault (it counts calls from now on).
Napi::Value FaultArm(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> hold(gFaultMutex);
  for (int i = 0; i < kFaultCallCount; i += 1) gFaultCalls[i] = 0;
  gFaultsArmed.store(true, std::memory_order_relaxed);
  return info.Env().Undefined();
}

// faultSet(call, errno, after, count): arms the seam and sets the fault of one kind of call (an
// index into FAULT_CALLS); 0, or EINVAL for an index out of range.
Napi::Value FaultSet(const Napi::CallbackInfo& info) {
  int call = info[0].As<Napi::Number>().Int32Value();
  int error = info[1].As<Napi::Number>().Int32Value();
  double after = info[2].As<Napi::Number>().DoubleValue();
  double count = info[3].As<Napi::Number>().DoubleValue();
  if (call < 0 || call >= kFaultCallCount || error < 0) return Status(info.Env(), EINVAL);
  std::lock_guard<std::mutex> hold(gFaultMutex);
  gFaultRules[call] = FaultRule{error, after, count};
  gFaultsArmed.store(true, std::memory_order_relaxed);
  return Status(info.Env(), 0);
}

// faultClear(): disarms the seam, forgets every fault and every count.
Napi::Value FaultClear(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> hold(gFaultMutex);
  gFaultsArmed.store(false, std::memory_order_relaxed);
  for (int i = 0; i < kFaultCallCount; i += 1) {
    gFaultRules[i] = FaultRule{0, 0, 0};
    gFaultCalls[i] = 0;
  }
  return info.Env().Undefined();
}

// faultCounts(): the calls of each kind (in FAULT_CALLS order) since the seam was armed.
Napi::Value FaultCounts(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> hold(gFaultMutex);
  Napi::Array counts = Napi::Array::New(info.Env(), kFaultCallCount);
  for (int i = 0; i < kFaultCallCount; i += 1) counts.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), gFaultCalls[i]));
  return counts;
}

#endif  // MEMGUARD_TEST_SEAM

// --- Mappings of each environment ---------------------------------------------------------------
//
// Every mapping this addon makes for JavaScript (map, mapSecret) is listed in its environment (the
// main thread, or one worker) until it is unmapped. When the environment ends (a worker terminated,
// or one that called process.exit(), where no JavaScript runs any more; or the main thread's
// teardown, after the exit purge), a cleanup hook wipes and unmaps what is still listed: secrets
// belong to the thread that made them and do not outlive it, locked, in the process.

struct EnvMappings {
  napi_env env;
  std::map<uintptr_t, size_t> live;  // base address -> total length
  std::vector<double> releasedViews;  // tokens of views whose memory no ArrayBuffer references any more
};

EnvMappings* MappingsOf(Napi::Env env) {
  return env.GetInstanceData<EnvMappings>();
}

void Listed(Napi::Env env, void* base, size_t total) {
  EnvMappings* mappings = MappingsOf(env);
  if (mappings != nullptr) mappings->live[reinterpret_cast<uintptr_t>(base)] = total;
}

void Unlisted(Napi::Env env, void* base) {
  EnvMappings* mappings = MappingsOf(env);
  if (mappings != nullptr) mappings->live.erase(reinterpret_cast<uintptr_t>(base));
}

// The environment is ending: make each listed mapping writable, wipe it whole (guard pages, canary,
// data; for the key state its secret memory too), and unmap it (which unlocks it). Not seamed.
void WipeEnvironment(void* arg) {
  EnvMappings* mappings = static_cast<EnvMappings*>(arg);
  for (const auto& entry : mappings->live) {
    uint8_t* base = reinterpret_cast<uint8_t*>(entry.first);
    size_t total = entry.second;
    if (mprotect(base, total, PROT_READ | PROT_WRITE) == 0) Wipe(base, total);
    munmap(base, total);
  }
  mappings->live.clear();
}

// liveMappings(): how many mappings this environment has listed (for tests and stats).
Napi::Value LiveMappings(const Napi::CallbackInfo& info) {
  EnvMappings* mappings = MappingsOf(info.Env());
  return Napi::Number::New(info.Env(), mappings == nullptr ? 0 : static_cast<double>(mappings->live.size()));
}

// pageSize(): the system page size.
Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// map(length): mmap of private anonymous PROT_NONE memory; the address (BigInt) or the errno (Number).
Napi::Value Map(const Napi::CallbackInfo& info) {
  size_t length = LengthOf(info[0]);
  void* p = SeamMmap(nullptr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status(info.Env(), errno);
  Listed(info.Env(), p, length);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

// unmap(address, length): munmap; 0 or the errno.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  int error = ErrnoOf(SeamMunmap(address, length));
  if (error == 0) Unlisted(info.Env(), address);
  return Status(info.Env(), error);
}

// protect(address, length, prot): mprotect; 0 or the errno.
Napi::Value Protect(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  int prot = info[2].As<Napi::Number>().Int32Value();
  return Status(info.Env(), ErrnoOf(SeamMprotect(address, length, prot)));
}

// lock(address, length): mlock; 0 or the errno.
Napi::Value Lock(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Status(info.Env(), ErrnoOf(SeamMlock(address, length)));
}

// lockOnFault(address, length): mlock2(MLOCK_ONFAULT): the range is locked (and charged to
// RLIMIT_MEMLOCK) now, its pages as they are touched, so that making it writable again does not
// walk it to populate it. Falls back to mlock where mlock2 is missing; 0 or the errno.
Napi::Value LockOnFault(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
#if defined(__linux__) && defined(SYS_mlock2)
  int fault = Fault(kFaultMlock2);
  int rc = fault == kMakeCall ? static_cast<int>(syscall(SYS_mlock2, address, length, 1 /* MLOCK_ONFAULT */)) : Injected(fault);
  if (rc == 0) return Status(info.Env(), 0);
  if (errno != ENOSYS && errno != EINVAL) return Status(info.Env(), errno);
#endif
  return Status(info.Env(), ErrnoOf(SeamMlock(address, length)));
}

// unlock(address, length): munlock; 0 or the errno.
Napi::Value Unlock(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Status(info.Env(), ErrnoOf(SeamMunlock(address, length)));
}

// advise(address, length, advice): madvise; 0 or the errno.
Napi::Value Advise(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  int advice = info[2].As<Napi::Number>().Int32Value();
  return Status(info.Env(), ErrnoOf(SeamMadvise(address, length, advice)));
}

// wipe(address, length): explicit_bzero of writable memory.
Napi::Value WipeMemory(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  Wipe(address, length);
  return info.Env().Undefined();
}

// view(address, length, token): an external ArrayBuffer over the memory. When V8 releases its
// backing store (every ArrayBuffer over it collected: the one made here, and any it was moved to by
// ArrayBuffer.prototype.transfer()), `token` is listed for releasedViews(): until then TypeScript
// keeps the memory mapped and never reuses it, so that a view kept too long faults instead of
// reading something else.
Napi::Value View(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  double token = info[2].As<Napi::Number>().DoubleValue();
  napi_value result;
  napi_status status = napi_create_external_arraybuffer(
      info.Env(), address, length,
      [](napi_env env, void*, void* hint) {
        void* data = nullptr;
        if (napi_get_instance_data(env, &data) != napi_ok || data == nullptr) return;
        static_cast<EnvMappings*>(data)->releasedViews.push_back(static_cast<double>(reinterpret_cast<uintptr_t>(hint)));
      },
      reinterpret_cast<void*>(static_cast<uintptr_t>(token)), &result);
  if (status != napi_ok) {
    Napi::Error::New(info.Env(), "external ArrayBuffers are not allowed here").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Value(info.Env(), result);
}

// releasedViews(): the tokens of the views released since the last call (see view()).
Napi::Value ReleasedViews(const Napi::CallbackInfo& info) {
  EnvMappings* mappings = MappingsOf(info.Env());
  size_t n = mappings == nullptr ? 0 : mappings->releasedViews.size();
  Napi::Array out = Napi::Array::New(info.Env(), n);
  for (size_t i = 0; i < n; i += 1) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), mappings->releasedViews[i]));
  if (mappings != nullptr) mappings->releasedViews.clear();
  return out;
}

// detach(arrayBuffer): napi_detach_arraybuffer; 0 or the napi_status (not an exception, so that
// the caller can go on revoking the other views and unmapping).
Napi::Value Detach(const Napi::CallbackInfo& info) {
  napi_status status = napi_detach_arraybuffer(info.Env(), info[0]);
  return Status(info.Env(), static_cast<int>(status));
}

// read(fd, address, length): read(2) straight into the memory, retrying on EINTR and waiting with
// poll(2) when the descriptor is non-blocking; the byte count (0 at the end) or a negative errno.
Napi::Value Read(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint8_t* address = AddressOf(info[1]);
  size_t length = LengthOf(info[2]);
  for (;;) {
    ssize_t n = read(fd, address, length);
    if (n >= 0) return Napi::Number::New(info.Env(), static_cast<double>(n));
    int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) {
      struct pollfd pfd;
      pfd.fd = fd;
      pfd.events = POLLIN;
      pfd.revents = 0;
      if (poll(&pfd, 1, -1) < 0 && errno != EINTR) return Status(info.Env(), -errno);
      continue;
    }
    return Status(info.Env(), -error);
  }
}

// canaryFill(address, length, pattern): fills `length` bytes with the Uint8Array `pattern` repeated
// from the first byte (the memory must be writable).
Napi::Value CanaryFill(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  Napi::Uint8Array pattern = info[2].As<Napi::Uint8Array>();
  size_t n = pattern.ByteLength();
  if (n == 0) return info.Env().Undefined();
  memcpy(address, pattern.Data(), length < n ? length : n);
  for (size_t filled = n; filled < length; filled *= 2) {
    size_t piece = filled < length - filled ? filled : length - filled;
    memcpy(address + filled, address, piece);
  }
  return info.Env().Undefined();
}

// canaryIntact(address, length, pattern): 1 when the `length` bytes are still `pattern` repeated
// from the first byte (its first bytes equal the pattern, and each byte equals the one a pattern's
// length before it), else 0. The memory must be readable.
Napi::Value CanaryIntact(const Napi::CallbackInfo& info) {
  const uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  Napi::Uint8Array pattern = info[2].As<Napi::Uint8Array>();
  size_t n = pattern.ByteLength();
  size_t head = length < n ? length : n;
  bool intact = memcmp(address, pattern.Data(), head) == 0 && (length <= n || memcmp(address + n, address, length - n) == 0);
  return Status(info.Env(), intact ? 1 : 0);
}

// disableCoreDumps(): setrlimit(RLIMIT_CORE, 0, 0); 0 or the errno.
Napi::Value DisableCoreDumps(const Napi::CallbackInfo& info) {
  struct rlimit none;
  none.rlim_cur = 0;
  none.rlim_max = 0;
  return Status(info.Env(), ErrnoOf(setrlimit(RLIMIT_CORE, &none)));
}

// --- Secret memory --------------------------------------------------------------------------------

// mapSecret(total, offset, length): reserves `total` bytes of PROT_NONE anonymous memory, then maps
// `length` bytes of memfd_secret(2) memory, read-write, at `offset` inside it (so the reservation's
// rest stays as guard pages). The base address of the reservation (BigInt), or an errno (Number):
// ENOSYS whenever memfd_secret itself fails (no secret memory in this kernel, disabled, or refused
// by a seccomp filter, which says EPERM), else the errno of ftruncate or mmap (EAGAIN: the mapping
// would exceed RLIMIT_MEMLOCK, which secret memory is charged to). The descriptor is closed.
Napi::Value MapSecret(const Napi::CallbackInfo& info) {
  size_t total = LengthOf(info[0]);
  size_t offset = LengthOf(info[1]);
  size_t length = LengthOf(info[2]);
#if defined(__linux__)
  int fault = Fault(kFaultMemfdSecret);
  int fd = fault == kMakeCall ? static_cast<int>(syscall(SYS_memfd_secret, static_cast<unsigned int>(O_CLOEXEC))) : -1;
  if (fd < 0) return Status(info.Env(), ENOSYS);
  if (SeamFtruncate(fd, static_cast<off_t>(length)) != 0) {
    int error = errno;
    close(fd);
    return Status(info.Env(), error);
  }
  void* base = SeamMmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    int error = errno;
    close(fd);
    return Status(info.Env(), error);
  }
  uint8_t* at = static_cast<uint8_t*>(base) + offset;
  void* p = SeamMmap(at, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
  int error = p == MAP_FAILED ? errno : 0;
  close(fd);
  if (error != 0) {
    munmap(base, total);  // the reservation only (not seamed: nothing secret was mapped yet)
    return Status(info.Env(), error);
  }
  Listed(info.Env(), base, total);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(base)));
#else
  (void)total;
  (void)offset;
  (void)length;
  return Status(info.Env(), ENOSYS);
#endif
}

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

const EVP_MD* Sha256() {
#if OPENSSL_VERSION_MAJOR >= 3
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
#else
  return EVP_sha256();
#endif
}

const EVP_CIPHER* Aead() {
#if OPENSSL_VERSION_MAJOR >= 3
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  return cipher;
#else
  return EVP_chacha20_poly1305();
#endif
}

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

// --- Authenticated encryption -------------------------------------------------------------------
//
// ChaCha20-Poly1305 under the derived key (the key slot). A sealed box is
// [nonce: 12][ciphertext: n][tag: 16]; TypeScript writes the nonce (a per-key counter) first. Each
// box is bound to its container: the container's id (a Number, unique in the process) is the
// associated data, as 8 little-endian bytes, so a box copied into another container does not open.

constexpr size_t kBindingBytes = 8;

// The associated data of the container `id` (a whole number below 2^53 that TypeScript made).
void BindingOf(const Napi::Value& value, uint8_t out[kBindingBytes]) {
  uint64_t id = static_cast<uint64_t>(value.As<Napi::Number>().Int64Value());
  for (size_t i = 0; i < kBindingBytes; i += 1) out[i] = static_cast<uint8_t>(id >> (8 * i));
}

// Encrypts `length` bytes at `source` into `box` (length + 28 bytes, nonce already in its first 12)
// under the key in the state's key slot; true on success.
bool SealRaw(const uint8_t* state, const uint8_t* source, size_t length, uint8_t* box, size_t boxLength, const uint8_t* binding) {
  if (boxLength != length + kNonceBytes + kTagBytes || length > (1u << 30)) return false;
  const EVP_CIPHER* cipher = Aead();
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (cipher == nullptr || ctx == nullptr) {
    EVP_CIPHER_CTX_free(ctx);
    return false;
  }
  int n = 0;
  int tail = 0;
  int aad = 0;
  bool ok = EVP_EncryptInit_ex(ctx, cipher, nullptr, state + kKeyOffset, box) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &aad, binding, static_cast<int>(kBindingBytes)) == 1 &&
            EVP_EncryptUpdate(ctx, box + kNonceBytes, &n, source, static_cast<int>(length)) == 1 &&
            EVP_EncryptFinal_ex(ctx, box + kNonceBytes + n, &tail) == 1 &&
            static_cast<size_t>(n + tail) == length &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagBytes, box + kNonceBytes + length) == 1;
  EVP_CIPHER_CTX_free(ctx);  // OpenSSL cleanses its copy of the key
  return ok;
}

// sealAt(state, address, length, box, id): encrypts `length` readable bytes at `address` (a locked
// region) into `box` (a Uint8Array of length + 28 whose first 12 bytes are the nonce), bound to the
// container `id`. 0, or -1 when OpenSSL failed.
Napi::Value SealAt(const Napi::CallbackInfo& info) {
  const uint8_t* state = AddressOf(info[0]);
  const uint8_t* source = AddressOf(info[1]);
  size_t length = LengthOf(info[2]);
  Napi::Uint8Array box = info[3].As<Napi::Uint8Array>();
  uint8_t binding[kBindingBytes];
  BindingOf(info[4], binding);
  if (Fault(kFaultSeal) != kMakeCall) return Status(info.Env(), -1);
  bool ok = SealRaw(state, source, length, box.Data(), box.ByteLength(), binding);
  return Status(info.Env(), ok ? 0 : -1);
}

// open(state, box, destination, id): checks and decrypts `box`, bound to the container `id`,
// straight into the memory at `destination` (box length - 28 bytes, writable). 0; 1 when the tag
// does not match (tampered, another container's box, or another key), after wiping what was
// written; -1 when OpenSSL failed (also wiped).
Napi::Value Open(const Napi::CallbackInfo& info) {
  const uint8_t* key = AddressOf(info[0]) + kKeyOffset;
  Napi::Uint8Array box = info[1].As<Napi::Uint8Array>();
  uint8_t* destination = AddressOf(info[2]);
  uint8_t binding[kBindingBytes];
  BindingOf(info[3], binding);
  size_t boxLength = box.ByteLength();
  if (boxLength <= kNonceBytes + kTagBytes || boxLength - kNonceBytes - kTagBytes > (1u << 30)) return Status(info.Env(), -1);
  size_t length = boxLength - kNonceBytes - kTagBytes;
  int fault = Fault(kFaultOpen);
  if (fault != kMakeCall) {
    // As a failed open: what the cipher could have written is wiped. EBADMSG stands for a tag that
    // does not match; any other errno for an OpenSSL failure.
    Wipe(destination, length);
    return Status(info.Env(), fault == EBADMSG ? 1 : -1);
  }
  const uint8_t* in = box.Data();
  // OpenSSL wants a writable tag buffer.
  uint8_t tag[kTagBytes];
  memcpy(tag, in + kNonceBytes + length, kTagBytes);
  const EVP_CIPHER* cipher = Aead();
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (cipher == nullptr || ctx == nullptr) {
    EVP_CIPHER_CTX_free(ctx);
    return Status(info.Env(), -1);
  }
  int n = 0;
  int tail = 0;
  int aad = 0;
  bool ready = EVP_DecryptInit_ex(ctx, cipher, nullptr, key, in) == 1 &&
               EVP_DecryptUpdate(ctx, nullptr, &aad, binding, static_cast<int>(kBindingBytes)) == 1 &&
               EVP_DecryptUpdate(ctx, destination, &n, in + kNonceBytes, static_cast<int>(length)) == 1 &&
               static_cast<size_t>(n) == length &&
               EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagBytes, tag) == 1;
  bool authentic = ready && EVP_DecryptFinal_ex(ctx, destination + n, &tail) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (authentic) return Status(info.Env(), 0);
  Wipe(destination, length);  // never leave unauthenticated plaintext behind
  return Status(info.Env(), ready ? 1 : -1);
}

#if defined(MEMGUARD_TEST_SEAM)
// xorByte(address, mask): flips bits of one writable byte. For the test hook that damages the
// pre-key (secret memory cannot be written through /proc/self/mem).
Napi::Value XorByte(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  int mask = info[1].As<Napi::Number>().Int32Value();
  *address ^= static_cast<uint8_t>(mask);
  return info.Env().Undefined();
}
#endif  // MEMGUARD_TEST_SEAM

void Constant(Napi::Object& exports, const char* name, int value) {
  exports.Set(name, Napi::Number::New(exports.Env(), value));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // One list per environment (the addon is initialised once in each thread that loads it). The
  // cleanup hook wipes what is left and frees the list; the instance data has no finalizer of its own.
  EnvMappings* mappings = new EnvMappings();
  mappings->env = env;
  napi_set_instance_data(env, mappings, nullptr, nullptr);
  napi_add_env_cleanup_hook(env, [](void* arg) {
    EnvMappings* ended = static_cast<EnvMappings*>(arg);
    WipeEnvironment(ended);
    napi_set_instance_data(ended->env, nullptr, nullptr, nullptr);  // nothing lists into it any more
    delete ended;
  }, mappings);
  exports.Set("liveMappings", Napi::Function::New(env, LiveMappings, "liveMappings"));
  exports.Set("releasedViews", Napi::Function::New(env, ReleasedViews, "releasedViews"));
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("map", Napi::Function::New(env, Map, "map"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("protect", Napi::Function::New(env, Protect, "protect"));
  exports.Set("lock", Napi::Function::New(env, Lock, "lock"));
  exports.Set("lockOnFault", Napi::Function::New(env, LockOnFault, "lockOnFault"));
  exports.Set("unlock", Napi::Function::New(env, Unlock, "unlock"));
  exports.Set("advise", Napi::Function::New(env, Advise, "advise"));
  exports.Set("wipe", Napi::Function::New(env, WipeMemory, "wipe"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("canaryFill", Napi::Function::New(env, CanaryFill, "canaryFill"));
  exports.Set("canaryIntact", Napi::Function::New(env, CanaryIntact, "canaryIntact"));
  exports.Set("disableCoreDumps", Napi::Function::New(env, DisableCoreDumps, "disableCoreDumps"));
  exports.Set("mapSecret", Napi::Function::New(env, MapSecret, "mapSecret"));
  exports.Set("random", Napi::Function::New(env, RandomFill, "random"));
  exports.Set("keyInit", Napi::Function::New(env, KeyInit, "keyInit"));
  exports.Set("keyDerive", Napi::Function::New(env, KeyDerive, "keyDerive"));
  exports.Set("keyRekey", Napi::Function::New(env, KeyRekey, "keyRekey"));
  exports.Set("sealAt", Napi::Function::New(env, SealAt, "sealAt"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
#if defined(MEMGUARD_TEST_SEAM)
  exports.Set("xorByte", Napi::Function::New(env, XorByte, "xorByte"));
  exports.Set("faultArm", Napi::Function::New(env, FaultArm, "faultArm"));
  exports.Set("faultSet", Napi::Function::New(env, FaultSet, "faultSet"));
  exports.Set("faultClear", Napi::Function::New(env, FaultClear, "faultClear"));
  exports.Set("faultCounts", Napi::Function::New(env, FaultCounts, "faultCounts"));
  Napi::Array faultNames = Napi::Array::New(env, kFaultCallCount);
  for (int i = 0; i < kFaultCallCount; i += 1) faultNames.Set(static_cast<uint32_t>(i), Napi::String::New(env, kFaultNames[i]));
  exports.Set("FAULT_CALLS", faultNames);
#endif
  // Which build this is: the release addon has neither the fault seam nor the floors.
  exports.Set("TEST_SEAM", Napi::Boolean::New(env,
#if defined(MEMGUARD_TEST_SEAM)
                                              true
#else
                                              false
#endif
                                              ));
  Constant(exports, "KEY_STATE_BYTES", static_cast<int>(kKeyStateBytes));
  Constant(exports, "PRE_KEY_BYTES", static_cast<int>(kPreKeyBytes));
  Constant(exports, "KEY_OFFSET", static_cast<int>(kKeyOffset));
  Constant(exports, "KEY_BYTES", static_cast<int>(kKeyBytes));
  Constant(exports, "SEAL_OVERHEAD", static_cast<int>(kNonceBytes + kTagBytes));
  Constant(exports, "NONCE_BYTES", static_cast<int>(kNonceBytes));
  Constant(exports, "PROT_NONE", PROT_NONE);
  Constant(exports, "PROT_READ", PROT_READ);
  Constant(exports, "PROT_WRITE", PROT_WRITE);
#if defined(__linux__)
  Constant(exports, "MADV_DONTDUMP", MADV_DONTDUMP);
  Constant(exports, "MADV_WIPEONFORK", MADV_WIPEONFORK);
  Constant(exports, "MADV_DONTFORK", MADV_DONTFORK);
#else
  Constant(exports, "MADV_DONTDUMP", -1);
  Constant(exports, "MADV_WIPEONFORK", -1);
  Constant(exports, "MADV_DONTFORK", -1);
#endif
  Constant(exports, "ENOMEM", ENOMEM);
  Constant(exports, "EPERM", EPERM);
  Constant(exports, "EAGAIN", EAGAIN);
  Constant(exports, "EINVAL", EINVAL);
  Constant(exports, "ENOSYS", ENOSYS);
  Constant(exports, "EBADMSG", EBADMSG);
  return exports;
}

}  // namespace

NODE_API_MODULE(memguard, Init)
