{
  "targets": [
    {
      "target_name": "crypto",
      "sources": ["native/crypto.cc", "native/memory.cc", "native/aead.cc", "native/mac.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!(node -p \"require('node:path').join(require('node:path').dirname(require.resolve('@secure-memory/addon-build/package.json')), 'include')\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
      "libraries": ["-l:libsodium.a", "-Wl,--exclude-libs,ALL", "-Wl,-z,now", "-Wl,-z,relro"],
      "xcode_settings": { "GCC_SYMBOLS_PRIVATE_EXTERN": "YES" }
    }
  ]
}
