// The system calls of @secure-memory/memguard, and nothing else.
//
// Every function makes the calls it is named after and returns a status: 0 or an errno, a byte
// count or a negative errno, an address (BigInt) or an errno (Number). TypeScript validates every
// argument before it calls here and turns each status into an error. Nothing in this file aborts
// the process: an argument of the wrong type becomes a JavaScript exception (node-addon-api with
// C++ exceptions), never an assertion.
#include <napi.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#ifndef MADV_DONTDUMP
#define MADV_DONTDUMP 16
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
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

double MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

void Wipe(uint8_t* address, size_t length) {
#if defined(__GLIBC__) || defined(__linux__) || defined(__OpenBSD__) || defined(__FreeBSD__)
  explicit_bzero(address, length);
#else
  volatile uint8_t* p = address;
  while (length-- > 0) *p++ = 0;
#endif
}

// pageSize(): the system page size.
Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// map(length): mmap of private anonymous PROT_NONE memory; the address (BigInt) or the errno (Number).
Napi::Value Map(const Napi::CallbackInfo& info) {
  size_t length = LengthOf(info[0]);
  void* p = mmap(nullptr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status(info.Env(), errno);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

// unmap(address, length): munmap; 0 or the errno.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Status(info.Env(), ErrnoOf(munmap(address, length)));
}

// protect(address, length, prot): mprotect; 0 or the errno.
Napi::Value Protect(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  int prot = info[2].As<Napi::Number>().Int32Value();
  return Status(info.Env(), ErrnoOf(mprotect(address, length, prot)));
}

// lock(address, length): mlock; 0 or the errno.
Napi::Value Lock(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Status(info.Env(), ErrnoOf(mlock(address, length)));
}

// unlock(address, length): munlock; 0 or the errno.
Napi::Value Unlock(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Status(info.Env(), ErrnoOf(munlock(address, length)));
}

// advise(address, length, advice): madvise; 0 or the errno.
Napi::Value Advise(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  int advice = info[2].As<Napi::Number>().Int32Value();
  return Status(info.Env(), ErrnoOf(madvise(address, length, advice)));
}

// wipe(address, length): explicit_bzero of writable memory.
Napi::Value WipeMemory(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  Wipe(address, length);
  return info.Env().Undefined();
}

// view(address, length): an external ArrayBuffer over the memory, with no finalizer (the memory
// belongs to TypeScript's region, which detaches every view before it unmaps).
Napi::Value View(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  size_t length = LengthOf(info[1]);
  return Napi::ArrayBuffer::New(info.Env(), address, length);
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

// disableCoreDumps(): setrlimit(RLIMIT_CORE, 0, 0); 0 or the errno.
Napi::Value DisableCoreDumps(const Napi::CallbackInfo& info) {
  struct rlimit none;
  none.rlim_cur = 0;
  none.rlim_max = 0;
  return Status(info.Env(), ErrnoOf(setrlimit(RLIMIT_CORE, &none)));
}

// floorMprotectPair(iterations): ns per PROT_READ + PROT_NONE pair on one locked page, in a C
// loop; a negative errno when a call failed.
Napi::Value FloorMprotectPair(const Napi::CallbackInfo& info) {
  double iterations = info[0].As<Napi::Number>().DoubleValue();
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status(info.Env(), -errno);
  mlock(p, page);  // as a buffer's page is; a refusal only makes the floor a little lower
  int failed = 0;
  double start = MonotonicNs();
  for (double i = 0; i < iterations; i += 1) {
    if (mprotect(p, page, PROT_READ) != 0 || mprotect(p, page, PROT_NONE) != 0) {
      failed = errno;
      break;
    }
  }
  double elapsed = MonotonicNs() - start;
  munmap(p, page);
  if (failed != 0) return Status(info.Env(), -failed);
  return Napi::Number::New(info.Env(), elapsed / iterations);
}

// floorGuardedAlloc(iterations): ns per guarded allocation and free of one data page, in a C loop:
// mmap (guard, page, guard) PROT_NONE, mprotect the page RW, mlock it, MADV_DONTDUMP and
// MADV_WIPEONFORK, then wipe, munlock and munmap. A negative errno when a call failed.
Napi::Value FloorGuardedAlloc(const Napi::CallbackInfo& info) {
  double iterations = info[0].As<Napi::Number>().DoubleValue();
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t total = 3 * page;
  int failed = 0;
  double start = MonotonicNs();
  for (double i = 0; i < iterations && failed == 0; i += 1) {
    void* p = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      failed = errno;
      break;
    }
    uint8_t* base = static_cast<uint8_t*>(p);
    uint8_t* inner = base + page;
    if (mprotect(inner, page, PROT_READ | PROT_WRITE) != 0 || mlock(inner, page) != 0
#if defined(__linux__)
        || madvise(base, total, MADV_DONTDUMP) != 0 || madvise(base, total, MADV_WIPEONFORK) != 0
#endif
    ) {
      failed = errno;
    } else {
      Wipe(inner, page);
      munlock(inner, page);
    }
    munmap(base, total);
  }
  double elapsed = MonotonicNs() - start;
  if (failed != 0) return Status(info.Env(), -failed);
  return Napi::Number::New(info.Env(), elapsed / iterations);
}

void Constant(Napi::Object& exports, const char* name, int value) {
  exports.Set(name, Napi::Number::New(exports.Env(), value));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("pageSize", Napi::Function::New(env, PageSize, "pageSize"));
  exports.Set("map", Napi::Function::New(env, Map, "map"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
  exports.Set("protect", Napi::Function::New(env, Protect, "protect"));
  exports.Set("lock", Napi::Function::New(env, Lock, "lock"));
  exports.Set("unlock", Napi::Function::New(env, Unlock, "unlock"));
  exports.Set("advise", Napi::Function::New(env, Advise, "advise"));
  exports.Set("wipe", Napi::Function::New(env, WipeMemory, "wipe"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("disableCoreDumps", Napi::Function::New(env, DisableCoreDumps, "disableCoreDumps"));
  exports.Set("floorMprotectPair", Napi::Function::New(env, FloorMprotectPair, "floorMprotectPair"));
  exports.Set("floorGuardedAlloc", Napi::Function::New(env, FloorGuardedAlloc, "floorGuardedAlloc"));
  Constant(exports, "PROT_NONE", PROT_NONE);
  Constant(exports, "PROT_READ", PROT_READ);
  Constant(exports, "PROT_WRITE", PROT_WRITE);
#if defined(__linux__)
  Constant(exports, "MADV_DONTDUMP", MADV_DONTDUMP);
  Constant(exports, "MADV_WIPEONFORK", MADV_WIPEONFORK);
#else
  Constant(exports, "MADV_DONTDUMP", -1);
  Constant(exports, "MADV_WIPEONFORK", -1);
#endif
  Constant(exports, "ENOMEM", ENOMEM);
  Constant(exports, "EPERM", EPERM);
  Constant(exports, "EAGAIN", EAGAIN);
  Constant(exports, "EINVAL", EINVAL);
  return exports;
}

}  // namespace

NODE_API_MODULE(memguard, Init)
