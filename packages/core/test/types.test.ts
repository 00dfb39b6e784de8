// Type tests: the `typecheck` target (tsc -p tsconfig.test.json) fails when a `@ts-expect-error`
// below has no error to expect, i.e. when the types accept a mistake they must refuse. The runtime
// half of each check is in secret.test.ts and select.test.ts.
import { type BackendOptionsFor, type CreateSecretFactoryOptions, type Secret, createSecretFactory } from '@secure-memory/core';
import { describe, expect, expectTypeOf, it } from 'vitest';

// A backend that declares its options, as every backend package of this repository does.
declare module '@secure-memory/core' {
  interface BackendOptionsByName {
    'typed-fixture': { mode?: 'a' | 'b'; debug?: boolean };
  }
}

describe('withBytes takes only a synchronous action', () => {
  it('infers the result of a synchronous action', () => {
    expectTypeOf<Secret['withBytes']>().toBeFunction();
    const uses = (s: Secret) => ({
      length: s.withBytes((b) => b.byteLength),
      nothing: s.withBytes((b) => {
        b.byteLength;
      }),
      maybe: s.withBytes((b) => (b.byteLength > 0 ? 'x' : undefined)),
      thenless: s.withBytes(() => ({ then: 1 })),
    });
    expectTypeOf<Omit<ReturnType<typeof uses>, 'nothing'>>().toEqualTypeOf<{ length: number; maybe: string | undefined; thenless: { then: number } }>();
    expectTypeOf(uses).returns.toHaveProperty('nothing').toBeVoid();
  });

  it('refuses an async action and a promise result at compile time', () => {
    const refused = (s: Secret) => [
      // @ts-expect-error an async action: use withBytesAsync
      s.withBytes(async (b) => b.byteLength),
      // @ts-expect-error a promise result: use withBytesAsync
      s.withBytes(() => Promise.resolve(1)),
    ];
    expectTypeOf(refused).toBeFunction();
    // withBytesAsync takes both.
    expectTypeOf<ReturnType<Secret['withBytesAsync']>>().toEqualTypeOf<Promise<unknown>>();
  });
});

describe('createSecretFactory checks the options of a backend that declared them', () => {
  it('types options by the backend named, and leaves other backends open', () => {
    expectTypeOf<BackendOptionsFor<'typed-fixture'>>().toEqualTypeOf<{ mode?: 'a' | 'b'; debug?: boolean }>();
    expectTypeOf<BackendOptionsFor<'auto'>>().toEqualTypeOf<Record<string, unknown>>();
    expectTypeOf<BackendOptionsFor<string>>().toEqualTypeOf<Record<string, unknown>>();
    expectTypeOf<CreateSecretFactoryOptions['options']>().toEqualTypeOf<Record<string, unknown> | undefined>();
  });

  it('refuses a misspelled option and a bad value at compile time', () => {
    const calls = () => [
      createSecretFactory({ backend: 'typed-fixture', options: { mode: 'a' } }),
      // @ts-expect-error a misspelled option
      createSecretFactory({ backend: 'typed-fixture', options: { mdoe: 'a' } }),
      // @ts-expect-error a value the backend does not take
      createSecretFactory({ backend: 'typed-fixture', options: { mode: 'c' } }),
      createSecretFactory({ backend: 'auto', options: { anything: 1 } }),
      createSecretFactory({ backend: '/abs/path/to/backend.js', options: { anything: 1 } }),
    ];
    expect(typeof calls).toBe('function');
  });
});
