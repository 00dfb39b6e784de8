/**
 * Native memory access for fault probes, through the shared libc binding of `@secure-memory/system`
 * (koffi, no compiler needed). Used only in child processes that are expected to die.
 * @module
 */
import { PROT_READ, PROT_WRITE, libc } from '@secure-memory/system';

export { PROT_READ, PROT_WRITE };

const lib = libc('testkit');

/** The system page size. */
export const pageSize = BigInt(lib.pageSize);

/** Reads one byte at `address` (faults if it is not readable). */
export function peek(address: bigint): number {
  return lib.peek(address);
}

/** Writes one byte at `address` (faults if it is not writable). */
export function poke(address: bigint, value: number): void {
  lib.poke(address, value);
}

/** Changes the protection of the page at `address`; returns 0 or the errno. */
export function protectPage(address: bigint, prot: number): number {
  return lib.mprotect(address - (address % pageSize), Number(pageSize), prot) === 0 ? 0 : lib.errno();
}
