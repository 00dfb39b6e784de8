// The report of the testkit's RLIMIT_MEMLOCK scenario (fixtures/limits.mjs), as the backends'
// memlock fixtures print it; each fixture adds its own fields.

/** What `memlockScenario` reports. */
export interface MemlockReport {
  uid: number;
  made: number;
  code?: string;
  requested?: number;
  limit?: number;
  syscall?: string;
  statsAtLimit: Record<string, number>;
  statsAfterRefusals: Record<string, number>;
  repeatedCodes: string[];
  vmGrowth: number;
  fdGrowth: number;
  intact: number;
  replacement: number | string;
}
