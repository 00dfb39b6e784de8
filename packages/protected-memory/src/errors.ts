/**
 * Turns a failed system call into the library's error, with the facts a caller can act on.
 * @module
 */
import {
  ErrorCode,
  type ErrorCodeValue,
  type SecureMemoryError,
} from '@secure-memory/core';
import {
  mapLimitError,
  memlockLimitError,
  systemError as coreSystemError,
} from '@secure-memory/core/backend';
import { EAGAIN, ENOMEM, EPERM } from './libc.js';

/** The backend's short name, as errors and secrets show it. */
export const BACKEND = 'protected-memory';

/** The error of a failed call that is not about a limit: `code` with errno and syscall, or `ERR_MAP_LIMIT`. */
export function systemError(code: ErrorCodeValue, syscall: string, errno: number, requested?: number): SecureMemoryError {
  return coreSystemError(BACKEND, code, syscall, errno, requested);
}

/**
 * The error of a refused lock of `length` bytes: `ERR_MEMLOCK_LIMIT` (with `requested` and the soft
 * `limit`) for EPERM/ENOMEM from mlock and EAGAIN from a secret-memory mmap; `ERR_MAP_LIMIT` at the
 * mapping limit; `ERR_ALLOCATION_FAILED` for anything else.
 */
export function lockError(syscall: 'mlock' | 'mmap', errno: number, length: number): SecureMemoryError {
  const atMapLimit = mapLimitError(BACKEND, syscall, errno);
  if (atMapLimit !== undefined) return atMapLimit;
  const overLimit = syscall === 'mlock' ? errno === ENOMEM || errno === EPERM : errno === EAGAIN;
  if (overLimit) return memlockLimitError(length, { backend: BACKEND, errno, syscall });
  return systemError(ErrorCode.ALLOCATION_FAILED, syscall, errno, length);
}
