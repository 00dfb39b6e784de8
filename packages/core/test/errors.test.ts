import { describe, expect, it } from 'vitest';
import {
  ErrorCode,
  GUARANTEE_FLAGS,
  SecureMemoryError,
  claimedFlags,
  isSecureMemoryError,
} from '@secure-memory/core';
import {
  assertBytes,
  assertOneOf,
  assertSize,
  defineGuarantees,
  memlockLimitError,
  readMemlockLimit,
} from '@secure-memory/core/backend';

const codeOf = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return 'no error';
};

describe('errors', () => {
  it('carry a stable code and the details they are given', () => {
    const error = new SecureMemoryError(ErrorCode.MEMLOCK_LIMIT, 'm', { requested: 4096, limit: 8192, errno: 12, syscall: 'mlock' });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'SecureMemoryError', code: 'ERR_MEMLOCK_LIMIT', requested: 4096, limit: 8192, errno: 12, syscall: 'mlock' });
    expect(isSecureMemoryError(error, 'ERR_MEMLOCK_LIMIT')).toBe(true);
    expect(isSecureMemoryError(error, 'ERR_MAP_LIMIT')).toBe(false);
    expect(isSecureMemoryError(new Error('x'))).toBe(false);
  });

  it('memlockLimitError reports the soft limit in bytes', () => {
    const error = memlockLimitError(4096, { errno: 12, syscall: 'mlock' });
    expect(error.code).toBe('ERR_MEMLOCK_LIMIT');
    expect(error.requested).toBe(4096);
    expect(error.limit).toBe(readMemlockLimit().soft);
  });
});

describe('assertions never echo the value they reject', () => {
  it('names the type of a rejected string, not its content', () => {
    let message = '';
    try {
      assertBytes('hunter2-password', 'source');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('type string');
    expect(message).not.toContain('hunter2');
  });

  it.each([
    [0, 'ERR_INVALID_SIZE'],
    [-5, 'ERR_INVALID_SIZE'],
    [2.5, 'ERR_INVALID_SIZE'],
    [Number.NaN, 'ERR_INVALID_SIZE'],
    [11, 'ERR_INVALID_SIZE'],
    ['4', 'ERR_INVALID_ARG_TYPE'],
    [4n, 'ERR_INVALID_ARG_TYPE'],
  ])('assertSize(%s) with max 10 -> %s', (value, code) => {
    expect(codeOf(() => assertSize(value, 'size', 10))).toBe(code);
  });

  it('assertOneOf accepts listed strings only', () => {
    expect(codeOf(() => assertOneOf('auto', 'mode', ['auto', 'off']))).toBe('no error');
    expect(codeOf(() => assertOneOf('on', 'mode', ['auto', 'off']))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => assertOneOf(1, 'mode', ['auto', 'off']))).toBe('ERR_INVALID_ARG_VALUE');
  });
});

describe('guarantees', () => {
  it('default every flag to false and freeze the manifest', () => {
    const manifest = defineGuarantees();
    expect(GUARANTEE_FLAGS).toHaveLength(11);
    for (const flag of GUARANTEE_FLAGS) expect(manifest[flag]).toBe(false);
    expect(Object.isFrozen(manifest)).toBe(true);
  });

  it('keep the claims given and list them', () => {
    const manifest = defineGuarantees({ lockedInRam: true, canary: true });
    expect(claimedFlags(manifest)).toEqual(['lockedInRam', 'canary']);
  });

  it('reject unknown flags and non-boolean values', () => {
    expect(codeOf(() => defineGuarantees({ madeUp: true } as never))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => defineGuarantees({ canary: 1 } as never))).toBe('ERR_INVALID_ARG_TYPE');
  });
});
