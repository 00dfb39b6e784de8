/**
 * Whether this kernel offers memfd_secret(2), probed once.
 * @module
 */
import { EAGAIN, MAP_SHARED, O_CLOEXEC, PROT_READ, PROT_WRITE, libc } from './libc.js';

let available: boolean | undefined;

function probe(): boolean {
  let lib;
  try {
    lib = libc();
  } catch {
    return false;
  }
  const fd = lib.memfdSecret(O_CLOEXEC);
  if (fd < 0) return false; // ENOSYS: not built in or not enabled (secretmem.enable=0); EPERM: a seccomp filter
  try {
    if (lib.ftruncate(fd, lib.pageSize) !== 0) return false;
    const address = lib.mmap(lib.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    // EAGAIN is RLIMIT_MEMLOCK refusing the (always locked) pages: the kernel has secret memory.
    if (address === lib.mapFailed || address === 0n) return lib.errno() === EAGAIN;
    lib.munmap(address, lib.pageSize); // nothing was touched, so no page was ever allocated
    return true;
  } finally {
    lib.close(fd);
  }
}

/**
 * True when this process can map secret memory (memfd_secret, Linux 5.14+ with secret memory
 * enabled; on by default since 6.5). Probed on the first call (one descriptor and one untouched
 * page, released at once) and cached. Never throws; false off Linux.
 * @throws never
 * @example
 * ```ts
 * if (!secretMemoryAvailable()) console.warn('memfd_secret is not available; secrets stay visible to the kernel');
 * ```
 */
export function secretMemoryAvailable(): boolean {
  available ??= probe();
  return available;
}
