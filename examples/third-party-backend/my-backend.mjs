// A third-party backend in a few lines: SecretFactoryBase supplies argument checks, source wiping,
// counters and every access rule; this backend only says how to allocate, protect, wipe and free.
// It keeps secrets in ordinary off-heap memory and claims only what that memory can keep.
import { SecretFactoryBase, defineGuarantees } from '@secure-memory/core';

export class WipingSecretFactory extends SecretFactoryBase {
  name = 'wiping-heap';
  guarantees = defineGuarantees({ wipesOnClose: true, constantTimeEquals: true });

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
