/** The addon in worker threads (built dist/, plain execArgv): each thread has its own instance and work page; results agree with the main thread's. */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { createFactory } from '@secure-memory/protected-memory';
import { describe, expect, it } from 'vitest';
import { aead, hkdf, hmac } from '../src/index.ts';

const WORKER = new URL('fixtures/worker-use.mjs', import.meta.url);

describe('worker threads', () => {
  it('seal, hmac and hkdf in several workers agree with the main thread, which keeps working after they end', async () => {
    const factory = createFactory();
    const keyBytes = randomBytes(32);
    using key = factory.new(Uint8Array.from(keyBytes));
    using gcm = aead('xchacha20-poly1305', key);
    using sub = hkdf('sha256', key, { length: 32 }, factory);
    const results = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<{ box: Uint8Array; tag: Uint8Array; derivedTag: Uint8Array }>((resolve, reject) => {
            const worker = new Worker(WORKER, { workerData: { key: keyBytes }, execArgv: [] });
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      ),
    );
    for (const result of results) {
      expect(Buffer.from(gcm.open(result.box)).toString()).toBe('from a worker');
      expect(Buffer.from(result.tag).equals(hmac('sha256', key, Buffer.from('x')))).toBe(true);
      expect(Buffer.from(result.derivedTag).equals(hmac('sha256', sub, Buffer.from('x')))).toBe(true);
    }
    expect(Buffer.from(gcm.open(gcm.seal(Buffer.from('after'))))).toEqual(Buffer.from('after'));
  });
});
