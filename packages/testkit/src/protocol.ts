/**
 * What the parent and the child processes of the probes agree on.
 * @module
 */

/** What the parent asks a child to do. */
export interface ChildConfig {
  mode: 'hold' | 'keep-view' | 'guard-after' | 'guard-before' | 'canary' | 'contract';
  module: string;
  options?: Record<string, unknown>;
}

/** The sizes of the secrets a holder makes; the second is made with `new` from an off-heap source. */
export const HELD_SIZES = [32, 32, 3000] as const;
