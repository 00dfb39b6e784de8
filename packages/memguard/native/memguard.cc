// The addon of @secure-memory/memguard: its system calls, and the OpenSSL calls of its Enclaves, and nothing else.
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
// The sources, by job: memory.cc (the system calls for memory), key.cc (the process key), aead.cc
// (sealing and opening), and, in the test build only, extra/faults.cc (the fault seam, see memguard.h,
// compiled only into the `memguard_test` target of native/extra/binding.gyp, never into the addon
// users install). This file makes the addon: its environment's mapping list and its exports. The
// benchmark floors are another addon (native/extra/floors.cc), never published.
#include "memguard.h"

namespace {

using namespace memguard;


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
  RegisterMemory(env, exports);
  RegisterKey(env, exports);
  RegisterAead(env, exports);
#if defined(MEMGUARD_TEST_SEAM)
  RegisterFaults(env, exports);
#endif
  // Which build this is: the release addon has neither the fault seam nor the floors.
  exports.Set("TEST_SEAM", Napi::Boolean::New(env,
#if defined(MEMGUARD_TEST_SEAM)
                                              true
#else
                                              false
#endif
                                              ));
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
