// What a test makes (secrets, buffers), released after each test even when the test failed midway.
import { afterEach } from 'vitest';

/** Options of {@link releasedAfterEach}. */
export interface ReleaseOptions {
  /**
   * Tests damage some items on purpose (a canary), and releasing those throws an error the test
   * has already checked: ignore errors of `release`. Off by default: a release that throws fails
   * the test.
   */
  damaged?: boolean;
  /** Runs after every item was released (a check that nothing is left). */
  then?: () => void;
}

/**
 * Registers an `afterEach` that releases every item passed to the returned `track` during the test,
 * in the order tracked; `track` hands its item back.
 */
export function releasedAfterEach<T>(release: (item: T) => void, { damaged = false, then }: ReleaseOptions = {}): <S extends T>(item: S) => S {
  const made: T[] = [];
  afterEach(() => {
    for (const item of made.splice(0)) {
      if (!damaged) release(item);
      else {
        try {
          release(item);
        } catch {
          // an item a test damaged: that test already saw the error
        }
      }
    }
    then?.();
  });
  return (item) => {
    made.push(item);
    return item;
  };
}
