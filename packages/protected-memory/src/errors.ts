/**
 * Turns a failed system call into the library's error, with the facts a caller can act on.
 * @module
 */
import {
  ErrorCode,
  type ErrorCodeValue,
  SecureMemoryError,
  memlockLimitError,
  readMapCount,
  readMaxMapCount,
} from '@secure-memory/core';
import { EAGAIN, ENOMEM, EPERM } from './libc.js';

/** The backend's short name, as errors and secrets show it. */
export const BACKEND = 'protected-memory';

/**
 * When the process is at `vm.max_map_count`, the error for it. A call that has to split a mapping
 * (mmap next to a merged mapping, mlock, madvise or mprotect on part of one, munmap in the middle)
 * fails with ENOMEM there; this tells that apart from a real lack of memory.
 */
function mapLimitError(syscall: string, errno: number): SecureMemoryError | undefined {
  if (errno !== ENOMEM) return undefined;
  const count = readMapCount();
  const max = readMaxMapCount();
  if (count === undefined || max === undefined || count + 4 < max) return undefined;
  return new SecureMemoryError(ErrorCode.MAP_LIMIT, `Too many mappings: vm.max_map_count is ${max}`, {
    backend: BACKEND,
    errno,
    syscall,
    requested: count + 1,
    limit: max,
  });
}

/** The error of a failed call that is not about a limit: `code` with errno and syscall, or `ERR_MAP_LIMIT`. */
export function systemError(code: ErrorCodeValue, syscall: string, errno: number, requested?: number): SecureMemoryError {
  return (
    mapLimitError(syscall, errno) ??
    new SecureMemoryError(code, `${syscall} failed with errno ${errno}`, {
      backend: BACKEND,
      errno,
      syscall,
      ...(requested === undefined ? {} : { requested }),
    })
  );
}

/**
 * The error of a refused lock of `length` bytes: `ERR_MEMLOCK_LIMIT` (with `requested` and the soft
 * `limit`) for EPERM/ENOMEM from mlock and EAGAIN from a secret-memory mmap; `ERR_MAP_LIMIT` at the
 * mapping limit; `ERR_ALLOCATION_FAILED` for anything else.
 */
export function lockError(syscall: 'mlock' | 'mmap', errno: number, length: number): SecureMemoryError {
  const atMapLimit = mapLimitError(syscall, errno);
  if (atMapLimit !== undefined) return atMapLimit;
  const overLimit = syscall === 'mlock' ? errno === ENOMEM || errno === EPERM : errno === EAGAIN;
  if (overLimit) return memlockLimitError(length, { backend: BACKEND, errno, syscall });
  return systemError(ErrorCode.ALLOCATION_FAILED, syscall, errno, length);
}
