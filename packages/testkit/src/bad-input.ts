/**
 * The bad-input table: wrong types, NaN, Infinity, negative, fractional and huge sizes, detached
 * buffers, closed secrets and a wrong `this`, each asserted by its error code and class, each
 * followed by a check that another secret was left intact.
 * @module
 */
import assert from 'node:assert/strict';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { type ErrorKind, bytesOf, expectCode } from './expect-code.js';

/** One bad input and the error code it must produce. */
export interface BadInputCase {
  name: string;
  /** The stable code expected. */
  code: string;
  /** The error class expected, by its `name` in the prototype chain. */
  kind: ErrorKind;
  call(factory: SecretFactory, fixture: BadInputFixture): unknown;
}

/** Secrets prepared for the bad-input table: one open, one closed. */
interface BadInputFixture {
  open: Secret;
  closed: Secret;
}

function detached(): Uint8Array {
  const view = new Uint8Array(16);
  structuredClone(view.buffer, { transfer: [view.buffer] });
  return view;
}

const NOT_BYTES: [string, () => unknown][] = [
  ['undefined', () => undefined],
  ['null', () => null],
  ['a string', () => 'password'],
  ['a number', () => 42],
  ['an array of numbers', () => [1, 2, 3]],
  ['an ArrayBuffer', () => new ArrayBuffer(8)],
  ['a DataView', () => new DataView(new ArrayBuffer(8))],
  ['a Uint16Array', () => new Uint16Array(4)],
  ['a plain object', () => ({ length: 4 })],
];

const BAD_SIZES: [string, unknown, string, BadInputCase['kind']][] = [
  ['undefined', undefined, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['a numeric string', '32', 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['a bigint', 32n, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['null', null, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['NaN', Number.NaN, 'ERR_INVALID_SIZE', 'RangeError'],
  ['Infinity', Number.POSITIVE_INFINITY, 'ERR_INVALID_SIZE', 'RangeError'],
  ['-Infinity', Number.NEGATIVE_INFINITY, 'ERR_INVALID_SIZE', 'RangeError'],
  ['a negative size', -1, 'ERR_INVALID_SIZE', 'RangeError'],
  ['zero', 0, 'ERR_INVALID_SIZE', 'RangeError'],
  ['a fractional size', 1.5, 'ERR_INVALID_SIZE', 'RangeError'],
  ['2^53', 2 ** 53, 'ERR_INVALID_SIZE', 'RangeError'],
  ['a huge size (8 GiB)', 2 ** 33, 'ERR_INVALID_SIZE', 'RangeError'],
  ['Number.MAX_VALUE', Number.MAX_VALUE, 'ERR_INVALID_SIZE', 'RangeError'],
];

const NOT_FUNCTIONS: [string, unknown][] = [
  ['undefined', undefined],
  ['a string', 'return 1'],
  ['a number', 7],
  ['an object', {}],
];

type AnyMethod = (...args: unknown[]) => unknown;
const method = (target: object, name: string): AnyMethod => (target as Record<string, AnyMethod>)[name] as AnyMethod;

/** The bad-input table: each case must fail with its code and leave every secret intact. */
export const BAD_INPUTS: readonly BadInputCase[] = [
  ...NOT_BYTES.map(
    ([label, value]): BadInputCase => ({
      name: `new(${label})`,
      code: 'ERR_INVALID_ARG_TYPE',
      kind: 'TypeError',
      call: (f) => f.new(value() as Uint8Array),
    }),
  ),
  { name: 'new(an empty Uint8Array)', code: 'ERR_INVALID_SIZE', kind: 'RangeError', call: (f) => f.new(new Uint8Array(0)) },
  { name: 'new(a detached Uint8Array)', code: 'ERR_INVALID_ARG_VALUE', kind: 'TypeError', call: (f) => f.new(detached()) },
  ...BAD_SIZES.map(
    ([label, value, code, kind]): BadInputCase => ({
      name: `createRandom(${label})`,
      code,
      kind,
      call: (f) => f.createRandom(value as number),
    }),
  ),
  ...NOT_FUNCTIONS.map(
    ([label, value]): BadInputCase => ({
      name: `withBytes(${label})`,
      code: 'ERR_INVALID_ARG_TYPE',
      kind: 'TypeError',
      call: (_f, { open }) => open.withBytes(value as never),
    }),
  ),
  { name: 'withBytesAsync(a string) rejects', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.withBytesAsync('x' as never) },
  { name: 'reader().read(a string)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.reader().read('x' as never) },
  { name: 'reader().read(null)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.reader().read(null as never) },
  { name: 'reader().read(a detached buffer)', code: 'ERR_INVALID_ARG_VALUE', kind: 'TypeError', call: (_f, { open }) => open.reader().read(detached()) },
  { name: 'equals(a string)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.equals('x' as never) },
  { name: 'equals(a number)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.equals(5 as never) },
  { name: 'equals(undefined)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.equals(undefined as never) },
  { name: 'equals(a detached buffer)', code: 'ERR_INVALID_ARG_VALUE', kind: 'TypeError', call: (_f, { open }) => open.equals(detached()) },
  { name: 'equals(a closed secret)', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { open, closed }) => open.equals(closed) },
  { name: 'withBytes on a closed secret', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { closed }) => closed.withBytes(() => 0) },
  { name: 'withBytesAsync on a closed secret rejects', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { closed }) => closed.withBytesAsync(() => 0) },
  { name: 'reader() on a closed secret', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { closed }) => closed.reader() },
  { name: 'withBytes with a wrong this', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (_f, { open }) => method(open, 'withBytes').call({}, () => 0) },
  { name: 'close with a wrong this', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (_f, { open }) => method(open, 'close').call(Object.create(null)) },
  { name: 'factory.new with a wrong this', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (f) => method(f, 'new').call({}, new Uint8Array(4)) },
  { name: 'factory.createRandom with this undefined', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (f) => method(f, 'createRandom').call(undefined, 4) },
];

/** Runs one bad-input case against fresh secrets and checks that it left them intact. */
export async function runBadInput(factory: SecretFactory, testCase: BadInputCase): Promise<void> {
  const open = factory.createRandom(32);
  const closed = factory.createRandom(32);
  closed.close();
  const expected = bytesOf(open);
  try {
    await expectCode(() => testCase.call(factory, { open, closed }), testCase.code, testCase.kind);
    assert.ok(bytesOf(open).equals(expected), 'the call changed another secret');
  } finally {
    open.close();
  }
}
