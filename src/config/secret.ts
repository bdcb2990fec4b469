import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * Holds a secret so that logging, `JSON.stringify`, `util.inspect` or string
 * interpolation of a config object can never print it. Only `reveal()` does.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
