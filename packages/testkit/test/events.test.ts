import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type ChildEvent, runChildScript } from '@secure-memory/testkit';

const CHILD = fileURLToPath(new URL('./fixtures/events/child.mjs', import.meta.url));

describe('the JSON-lines child protocol (runChildScript, sendEvent, sendError)', () => {
  it('hands over every event in order, passes plain lines over, and notes a broken line in stderr instead of throwing', async () => {
    const seen: ChildEvent[] = [];
    const end = await runChildScript(CHILD, { end: 'exit' }, (event) => seen.push(event));
    expect(end.events).toEqual([
      { event: 'first', address: '0x1234' },
      { event: 'error', code: 'ERR_TEST', message: 'it broke' },
      { event: 'last', n: 2 },
    ]);
    expect(seen).toEqual(end.events);
    expect({ code: end.code, signal: end.signal }).toEqual({ code: 3, signal: null });
    expect(end.stderr).toContain('unparsable line on stdout: {this is not JSON');
    expect(end.stderr).toContain('a line on stderr');
  });

  it('reports a child killed by a signal, with the events it sent before', async () => {
    const end = await runChildScript(CHILD, { end: 'kill' });
    expect({ code: end.code, signal: end.signal }).toEqual({ code: null, signal: 'SIGKILL' });
    expect(end.events.map((e) => e.event)).toEqual(['first', 'error', 'last']);
  });

  it('a script node cannot load ends with code 1, no events and the reason in stderr', async () => {
    const missing = fileURLToPath(new URL('./fixtures/events/no-such-child.mjs', import.meta.url));
    const end = await runChildScript(missing, {});
    expect(end.code).toBe(1);
    expect(end.events).toEqual([]);
    expect(end.stderr).toContain('no-such-child.mjs');
  });
});
