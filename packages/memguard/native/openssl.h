// The OpenSSL algorithms of the memguard addon (key.cc, aead.cc), from the OpenSSL Node.js is built
// with (the node binary exports its symbols): fetched once with OpenSSL 3, else its static tables.
#ifndef MEMGUARD_NATIVE_OPENSSL_H_
#define MEMGUARD_NATIVE_OPENSSL_H_

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace memguard {

#if OPENSSL_VERSION_MAJOR >= 3
inline const EVP_MD* Sha256() { static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr); return md; }
inline const EVP_CIPHER* Aead() { static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr); return cipher; }
#else
inline const EVP_MD* Sha256() { return EVP_sha256(); }
inline const EVP_CIPHER* Aead() { return EVP_chacha20_poly1305(); }
#endif

}  // namespace memguard

#endif  // MEMGUARD_NATIVE_OPENSSL_H_
