// The fault seam of the test build (MEMGUARD_TEST_SEAM: binding.gyp's memguard_test here,
// never the addon users install nor the package npm publishes): the state behind Fault() in
// memguard.h, the functions that arm and read it from test/support's hooks, and xorByte, which
// damages one byte of the key state for the tests. See memguard.h for what the seam does.
#if !defined(MEMGUARD_TEST_SEAM)
#error "faults.cc belongs to the test build only"
#endif
#include "../memguard.h"

#include <mutex>

namespace memguard {

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

// xorByte(address, mask): flips bits of one writable byte. For the test hook that damages the
// pre-key (secret memory cannot be written through /proc/self/mem).
Napi::Value XorByte(const Napi::CallbackInfo& info) {
  uint8_t* address = AddressOf(info[0]);
  int mask = info[1].As<Napi::Number>().Int32Value();
  *address ^= static_cast<uint8_t>(mask);
  return info.Env().Undefined();
}

void RegisterFaults(Napi::Env env, Napi::Object& exports) {
  Export(env, exports, "xorByte", XorByte);
  Export(env, exports, "faultArm", FaultArm);
  Export(env, exports, "faultSet", FaultSet);
  Export(env, exports, "faultClear", FaultClear);
  Export(env, exports, "faultCounts", FaultCounts);
  Napi::Array faultNames = Napi::Array::New(env, kFaultCallCount);
  for (int i = 0; i < kFaultCallCount; i += 1) faultNames.Set(static_cast<uint32_t>(i), Napi::String::New(env, kFaultNames[i]));
  exports.Set("FAULT_CALLS", faultNames);
}

}  // namespace memguard
