// Linux constants that older C library headers lack, for the system calls of the secure-memory
// addons (memguard's, crypto's), with the values of the kernel's uapi headers. One copy for both:
// their binding.gyp files put this directory on the include path.
#ifndef SECURE_MEMORY_LINUX_H_
#define SECURE_MEMORY_LINUX_H_

#if defined(__linux__)
#include <sys/mman.h>
#include <sys/syscall.h>

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

#endif  // SECURE_MEMORY_LINUX_H_
