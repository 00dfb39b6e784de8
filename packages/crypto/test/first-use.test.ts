/**
 * What a native call leaves on the stack. The first version of the addon wiped 16 KiB of stack
 * after each call but left the key in vector registers, and its first call of explicit_bzero went
 * through lazy symbol binding, whose resolver saved every vector register below the wiped area:
 * a whole ChaCha20 key (17 windows), or one AES-256-GCM round key that is half of the key, stayed
 * on the main thread's stack for the life of the process. The addon is now linked with -z now and
 * zeroes the vector registers after each call; a fresh process finds no window after its first call.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('fixtures/first-use-child.mjs', import.meta.url));

describe('the first call of the addon in a process', () => {
  it.each([
    ['keyNew:0', 'an AES-256-GCM key state'],
    ['keyNew:1', 'a ChaCha20-Poly1305 key state'],
    ['keyNew:2', 'an XChaCha20-Poly1305 key state'],
    ['hmac:0', 'HMAC-SHA-256'],
    ['hmac:1', 'HMAC-SHA-512'],
    ['hkdf:0', 'HKDF-SHA-256'],
    ['hkdf:1', 'HKDF-SHA-512'],
  ])('%s (%s) leaves no window of the key on the stack', (call) => {
    const run = spawnSync(process.execPath, [CHILD, call], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ found: 0 });
  });
});
