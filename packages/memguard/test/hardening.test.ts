// Issue #13 (hardening), in process: what a careless caller can do must fail with a typed error.
// The parts that need an outside scan, a fault or another Node live in hardening-children.test.ts.
import { describe, expect, it } from 'vitest';
import { catchSignal } from '@secure-memory/memguard';

const code = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return 'no error';
};

describe('catchSignal refuses the synchronous fault signals', () => {
  it.each(['SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL'] as const)('%s: ERR_INVALID_ARG_VALUE, and no listener is installed', (signal) => {
    const before = process.listenerCount(signal);
    const error = (() => {
      try {
        catchSignal(() => {}, 'SIGTERM', signal);
      } catch (e) {
        return e as Error & { code?: string };
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(TypeError);
    expect(error?.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(process.listenerCount(signal)).toBe(before);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('control: an ordinary signal is accepted', () => {
    expect(code(() => catchSignal(() => {}, 'SIGUSR2'))).toBe('no error');
    expect(process.listenerCount('SIGUSR2')).toBe(1);
  });
});
