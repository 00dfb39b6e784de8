// This process's memory as /proc/self shows it, for the backends' in-process tests: the mappings
// that hold given addresses (one read of /proc/self/smaps through the testkit's reader), and bytes
// read through /proc/self/mem, which ignores page protection as a debugger does.
import { closeSync, openSync, readSync } from 'node:fs';
import { findMapping, readMappings } from '@secure-memory/testkit';

/** The perms and VmFlags of the mapping of this process that holds an address. */
export interface MappingFacts {
  start: bigint;
  end: bigint;
  perms: string;
  flags: string[];
}

/** The mapping of this process that holds each address (undefined where nothing is mapped). */
export function mappingsAt(...addresses: bigint[]): (MappingFacts | undefined)[] {
  const mappings = readMappings('self');
  return addresses.map((address) => {
    const found = findMapping(mappings, address);
    return found === undefined ? undefined : { start: found.start, end: found.end, perms: found.perms, flags: found.vmFlags };
  });
}

/**
 * `size` bytes at `address` of this process, read through /proc/self/mem (PROT_NONE does not stop
 * it on anonymous memory); bytes it could not read keep the value `fill`.
 */
export function readSelf(address: bigint, size: number, fill: number): Buffer {
  const bytes = Buffer.alloc(size, fill);
  const fd = openSync('/proc/self/mem', 'r');
  try {
    readSync(fd, bytes, 0, size, address);
  } finally {
    closeSync(fd);
  }
  return bytes;
}
