// The guarantee statuses shared by the backends whose secrets sit in locked pages between guard
// pages with a canary (sodium; memguard's locked mode): each conformance test spreads this table and
// states where its modes differ, so every flag's status is still stated for every mode.
export const GUARDED_LOCKED = {
  wipesOnClose: 'verified',
  lockedInRam: 'verified',
  excludedFromCoreDumps: 'verified',
  noAccessWhenIdle: 'verified',
  viewsRevoked: 'absent',
  guardPages: 'verified',
  canary: 'verified',
  encryptedAtRest: 'absent',
  notInheritedByFork: 'absent',
  hiddenFromKernel: 'absent',
  constantTimeEquals: 'verified',
} as const;
