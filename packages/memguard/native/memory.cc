// The system calls of the memguard addon for its memory: mappings (mmap, munmap, mprotect, mlock,
// madvise, memfd_secret), listed per environment and wiped when it ends; external ArrayBuffers over
// them and their release; read(2) into them; the canary; and the core-dump limit. Each function
// makes the calls it is named after (through the fault seam of memguard.h) and returns a status.
#include "memguard.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "secure_memory_linux.h"  // from @secure-memory/addon-build: MADV_*, SYS_memfd_secret for older C libraries

namespace memguard {

// --- Mappings of each environment ---------------------------------------------------------------
//
// Every mapping this addon makes for JavaScript (map, mapSecret) is listed in its environment (the
// main thread, or one worker) until it is unmapped. When the environment ends (a worker terminated,
// or one that called process.exit(), where no JavaScript runs any more; or the main thread's
// teardown, after the exit purge), a cleanup hook wipes and unmaps what is still listed: secrets
// belong to the thread that made them and do not outlive it, locked, in the process.

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
  int prot = info[2].As<Napi::Number>().Int32Value();
  return RangeStatus(info, [prot](uint8_t* address, size_t length) { return SeamMprotect(address, length, prot); });
}

// mlock2(MLOCK_ONFAULT): the range is locked (and charged to RLIMIT_MEMLOCK) now, its pages as
// they are touched, so that making it writable again does not walk it to populate it. Falls back
// to mlock where the kernel has no mlock2: 0 or the errno.
int LockOnFaultRange(uint8_t* address, size_t length) {
#if defined(__linux__) && defined(SYS_mlock2)
  int fault = Fault(kFaultMlock2);
  int rc = fault == kMakeCall ? static_cast<int>(syscall(SYS_mlock2, address, length, 1 /* MLOCK_ONFAULT */)) : Injected(fault);
  if (rc == 0) return 0;
  if (errno != ENOSYS && errno != EINVAL) return errno;
#endif
  return ErrnoOf(SeamMlock(address, length));
}

// prepare(base, total, inner, innerLength, onFault): the calls that make a fresh guarded mapping
// ready, in one call: mprotect(inner, READ|WRITE), mlock (mlock2 ONFAULT when `onFault`),
// madvise(base, DONTDUMP), madvise(base, WIPEONFORK). Stops at the first that fails: 0, or
// step * 65536 + errno with step 1 to 4 in that order. Undoing is the caller's (munmap).
Napi::Value Prepare(const Napi::CallbackInfo& info) {
  uint8_t* base = AddressOf(info[0]);
  size_t total = LengthOf(info[1]);
  uint8_t* inner = AddressOf(info[2]);
  size_t innerLength = LengthOf(info[3]);
  bool onFault = info[4].As<Napi::Boolean>().Value();
  int error = ErrnoOf(SeamMprotect(inner, innerLength, PROT_READ | PROT_WRITE));
  if (error != 0) return Status(info.Env(), 1 * 65536 + error);
  error = onFault ? LockOnFaultRange(inner, innerLength) : ErrnoOf(SeamMlock(inner, innerLength));
  if (error != 0) return Status(info.Env(), 2 * 65536 + error);
  error = ErrnoOf(SeamMadvise(base, total, MADV_DONTDUMP));
  if (error != 0) return Status(info.Env(), 3 * 65536 + error);
  error = ErrnoOf(SeamMadvise(base, total, MADV_WIPEONFORK));
  if (error != 0) return Status(info.Env(), 4 * 65536 + error);
  return Status(info.Env(), 0);
}

// release(inner, innerLength, base, total): munmap of the whole mapping, which unlocks it too; only
// when that fails, munlock of the inner pages (its failure is ignored), so that a mapping left for a
// later retry holds no locked memory: 0 or munmap's errno.
Napi::Value Release(const Napi::CallbackInfo& info) {
  uint8_t* base = AddressOf(info[2]);
  int error = ErrnoOf(SeamMunmap(base, LengthOf(info[3])));
  if (error == 0) {
    Unlisted(info.Env(), base);
  } else {
    SeamMunlock(AddressOf(info[0]), LengthOf(info[1]));
  }
  return Status(info.Env(), error);
}

// advise(address, length, advice): madvise; 0 or the errno.
Napi::Value Advise(const Napi::CallbackInfo& info) {
  int advice = info[2].As<Napi::Number>().Int32Value();
  return RangeStatus(info, [advice](uint8_t* address, size_t length) { return SeamMadvise(address, length, advice); });
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
// reading something else. Token 0: no report (an internal view, which TypeScript detaches itself);
// a finalizer per view costs an allocation and a queued callback, and its token would pile up
// unread (releasedViews() is only called while views handed out are outstanding).
Napi::Value View(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  double token = info[2].As<Napi::Number>().DoubleValue();
  napi_value result;
  napi_status status;
  if (token == 0) {
    // A view of the package's own, always detached before its memory changes: nothing to report.
    status = napi_create_external_arraybuffer(info.Env(), address, length, nullptr, nullptr, &result);
  } else {
    status = napi_create_external_arraybuffer(
        info.Env(), address, length,
        [](napi_env env, void*, void* hint) {
          void* data = nullptr;
          if (napi_get_instance_data(env, &data) != napi_ok || data == nullptr) return;
          static_cast<EnvMappings*>(data)->releasedViews.push_back(static_cast<double>(reinterpret_cast<uintptr_t>(hint)));
        },
        reinterpret_cast<void*>(static_cast<uintptr_t>(token)), &result);
  }
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
bool IntactAt(const uint8_t* address, size_t length, const Napi::Uint8Array& pattern) {
  size_t n = pattern.ByteLength();
  size_t head = length < n ? length : n;
  return memcmp(address, pattern.Data(), head) == 0 && (length <= n || memcmp(address + n, address, length - n) == 0);
}

Napi::Value CanaryIntact(const Napi::CallbackInfo& info) {
  return Status(info.Env(), IntactAt(AddressOf(info[0]), LengthOf(info[1]), info[2].As<Napi::Uint8Array>()) ? 1 : 0);
}

// canaryCheckWipe(address, length, pattern, wipeAddress, wipeLength): canaryIntact, then
// explicit_bzero of `wipeLength` bytes at `wipeAddress` (writable), in one call: 1 when the canary
// was intact, else 0 (wiped either way).
Napi::Value CanaryCheckWipe(const Napi::CallbackInfo& info) {
  bool intact = IntactAt(AddressOf(info[0]), LengthOf(info[1]), info[2].As<Napi::Uint8Array>());
  Wipe(AddressOf(info[3]), LengthOf(info[4]));
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

void RegisterMemory(Napi::Env env, Napi::Object& exports) {
  Export(env, exports, "releasedViews", ReleasedViews);
  Export(env, exports, "prepare", Prepare);
  Export(env, exports, "release", Release);
  Export(env, exports, "pageSize", PageSize);
  Export(env, exports, "map", Map);
  Export(env, exports, "unmap", Unmap);
  Export(env, exports, "protect", Protect);
  Export(env, exports, "advise", Advise);
  Export(env, exports, "wipe", WipeMemory);
  Export(env, exports, "view", View);
  Export(env, exports, "detach", Detach);
  Export(env, exports, "read", Read);
  Export(env, exports, "canaryFill", CanaryFill);
  Export(env, exports, "canaryIntact", CanaryIntact);
  Export(env, exports, "canaryCheckWipe", CanaryCheckWipe);
  Export(env, exports, "disableCoreDumps", DisableCoreDumps);
  Export(env, exports, "mapSecret", MapSecret);
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
}

}  // namespace memguard
