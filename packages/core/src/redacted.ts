/**
 * Redaction, written once: objects that hold secret memory show only their `toString()` text in
 * JSON, template strings, string conversion and `util.inspect`.
 * @module
 */

const inspectCustom = Symbol.for('nodejs.util.inspect.custom');

/**
 * Extend this for any object that holds secret memory and give it a `toString()` that says what it
 * is without its bytes, such as `Secret(memguard, 32 bytes)`; every other string form returns it.
 */
export abstract class Redacted {
  /** The redacted form: what the object is, never its bytes. */
  abstract toString(): string;

  /** The redacted form; the bytes never reach JSON. */
  toJSON(): string {
    return this.toString();
  }

  [Symbol.toPrimitive](hint: string): string | number {
    return hint === 'number' ? Number.NaN : this.toString();
  }

  [inspectCustom](): string {
    return this.toString();
  }
}
