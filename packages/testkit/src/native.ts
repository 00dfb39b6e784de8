/**
 * Native memory access for fault probes, through koffi and libc (no compiler needed). Used only in
 * child processes that are expected to die.
 * @module
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const memcpyIn = libc.func('void *memcpy(_Out_ uint8_t *dst, uintptr_t src, size_t n)');
const memset = libc.func('uintptr_t memset(uintptr_t s, int c, size_t n)');
const mprotect = libc.func('int mprotect(uintptr_t addr, size_t len, int prot)');
const sysconf = libc.func('long sysconf(int name)');

const SC_PAGESIZE = 30;
export const PROT_READ = 1;
export const PROT_WRITE = 2;

/** The system page size. */
export const pageSize = BigInt(sysconf(SC_PAGESIZE) as number);

/** Reads one byte at `address` (faults if it is not readable). */
export function peek(address: bigint): number {
  const out = Buffer.alloc(1);
  memcpyIn(out, address, 1);
  return out[0] as number;
}

/** Writes one byte at `address` (faults if it is not writable). */
export function poke(address: bigint, value: number): void {
  memset(address, value, 1);
}

/** Changes the protection of the page at `address`; returns 0 or the errno. */
export function protectPage(address: bigint, prot: number): number {
  return (mprotect(address - (address % pageSize), pageSize, prot) as number) === 0 ? 0 : koffi.errno();
}
