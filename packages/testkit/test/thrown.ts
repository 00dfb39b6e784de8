// What a call throws, for tests that assert several things about one error (its class, its code,
// its message) from a single call.

/** The value `fn` throws, or `undefined` when it returns. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}
