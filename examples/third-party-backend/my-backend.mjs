// A third-party backend in a few lines: SecretFactoryBase supplies argument checks, source wiping,
// counters and every access rule; this backend only says how to allocate, protect, wipe and free.
// It keeps secrets in ordinary off-heap memory and claims only what that memory can keep.
import { isMainThread } from 'node:worker_threads';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { SecretFactoryBase, defineGuarantees } from '@secure-memory/core/backend';

export class WipingSecretFactory extends SecretFactoryBase {
  name = 'wiping-heap';
  guarantees = defineGuarantees({ wipesOnClose: true, constantTimeEquals: true });

  constructor() {
    super();
    // A terminated worker's memory is freed without running any JavaScript, so nothing could wipe
    // it: a backend that wipes from JavaScript refuses worker threads rather than break its claim.
    if (!isMainThread) throw new SecureMemoryError(ErrorCode.UNSUPPORTED_PLATFORM, 'wiping-heap runs only on the main thread');
  }

  allocate(size, fill) {
    const bytes = new Uint8Array(new ArrayBuffer(size)); // off the V8 heap: never moved by the GC
    fill(bytes);
    return {
      protectRead: () => bytes,
      protectIdle: () => {},
      wipe: () => bytes.fill(0),
      free: () => {},
    };
  }

  backendStats() {
    return { lockedBytes: 0 };
  }
}

export function createFactory() {
  return new WipingSecretFactory();
}
