// The authenticated encryption of the memguard addon's Enclaves and Streams: ChaCha20-Poly1305 of
// the OpenSSL Node.js is built with (EVP interface; no primitive is written here), under the key
// that key.cc derives into the key state.
#include "memguard.h"
#include "openssl.h"

namespace memguard {

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

// sealFrom(state, source, box, id): as sealAt, from the bytes of the Uint8Array `source` (its whole
// length). TypeScript calls it only for arrays far larger than V8 ever keeps inside the heap, so
// that asking for their data moves nothing.
Napi::Value SealFrom(const Napi::CallbackInfo& info) {
  const uint8_t* state = AddressOf(info[0]);
  Napi::Uint8Array source = info[1].As<Napi::Uint8Array>();
  Napi::Uint8Array box = info[2].As<Napi::Uint8Array>();
  uint8_t binding[kBindingBytes];
  BindingOf(info[3], binding);
  if (Fault(kFaultSeal) != kMakeCall) return Status(info.Env(), -1);
  bool ok = SealRaw(state, source.Data(), source.ByteLength(), box.Data(), box.ByteLength(), binding);
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

void RegisterAead(Napi::Env env, Napi::Object& exports) {
  Export(env, exports, "sealAt", SealAt);
  Export(env, exports, "sealFrom", SealFrom);
  Export(env, exports, "open", Open);
  Constant(exports, "SEAL_OVERHEAD", static_cast<int>(kNonceBytes + kTagBytes));
  Constant(exports, "NONCE_BYTES", static_cast<int>(kNonceBytes));
}

}  // namespace memguard
