# Addons for this package's development only; never built at install, never loaded by the package's
# entry point (the addon users install is ../../binding.gyp's `memguard`, without any of this):
#   memguard_test:  the addon's sources (../*.cc) with the fault seam (MEMGUARD_TEST_SEAM, faults.cc), for src/testing.ts (not published)
#   memguard_bench: the benchmark floors (floors.cc, nothing of memguard's), for `@secure-memory/memguard/bench`
# Built by `node native/build.mjs` (the package's build script) into native/extra/build/Release/.
{
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!(node -p \"require('node:path').join(require('node:path').dirname(require.resolve('@secure-memory/addon-build/package.json')), 'include')\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
    "cflags_cc": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
    "xcode_settings": { "GCC_SYMBOLS_PRIVATE_EXTERN": "YES" }
  },
  "targets": [
    {
      "target_name": "memguard_test",
      "sources": ["../memguard.cc", "../memory.cc", "../key.cc", "../aead.cc", "faults.cc"],
      "defines": ["MEMGUARD_TEST_SEAM=1"]
    },
    { "target_name": "memguard_bench", "sources": ["floors.cc"] }
  ]
}
