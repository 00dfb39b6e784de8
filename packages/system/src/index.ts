/**
 * `@secure-memory/system`: the one thin system layer the secure-memory packages share: the libc
 * calls through koffi ({@link libc}, loaded on first use, never at import), and the
 * reader of /proc/<pid>/smaps ({@link readMappings}). Tests replace it (for
 * example with `vi.mock`); the shipped code has no switch that weakens it.
 * @module
 */
export * from './libc.js';
export * from './proc.js';
