{
  "targets": [
    {
      "target_name": "crypto",
      "sources": ["native/crypto.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
      "libraries": ["-l:libsodium.a", "-Wl,--exclude-libs,ALL", "-Wl,-z,now", "-Wl,-z,relro"],
      "xcode_settings": { "GCC_SYMBOLS_PRIVATE_EXTERN": "YES" }
    }
  ]
}
