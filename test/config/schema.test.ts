import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { FIELD, mapping, parseSection, SECTION, wholeNumber } from '../../src/config/schema.js';

/** A value that must never reach a message. */
const SECRET = 'Zq8~sEcReT.vAlUe-9f3b1c7e2d4a6b8c0d1e3f5a7b9';

describe('the adapter from schema issues to problems', () => {
  it('never passes on the library message, which quotes the value', () => {
    const schema = mapping(
      { port: v.number() },
      { notMapping: 'x must be a mapping.', unknownKey: () => undefined },
    );
    const { problems } = parseSection(schema, { port: SECRET }, { prefix: 'x' });
    expect(problems).toEqual([
      { field: 'x.port', message: 'x.port is not valid (expected number).' },
    ]);
    expect(v.safeParse(v.number(), SECRET).issues?.[0]?.message).toContain(SECRET);
  });

  it('names the field by its path, hides a key that may be a secret, and says each problem once', () => {
    const schema = mapping(
      {
        rules: v.array(
          mapping(
            { n: wholeNumber(1, 3, `${FIELD} must be 1 to 3.`) },
            {
              notMapping: `${FIELD} must be a mapping.`,
              unknownKey: (key) => `${SECTION} has no ${key.length}-character key.`,
            },
          ),
        ),
      },
      { notMapping: 'must be a mapping.', unknownKey: () => undefined },
    );
    // -1.5 misses both integer and minimum: one problem.
    const { problems } = parseSection(
      schema,
      { rules: [{ n: 2 }, { n: -1.5, [SECRET]: 1 }] },
      {
        prefix: 'sec',
        name: (field) => `${field} (SEC_N)`,
      },
    );
    expect(problems).toEqual([
      { field: 'sec.rules[1].n', message: 'sec.rules[1].n (SEC_N) must be 1 to 3.' },
      { field: 'sec.rules[1].(unknown key)', message: 'sec.rules[1] has no 44-character key.' },
    ]);
  });

  it('tells which fields were invalid, so that the rest can still be read', () => {
    const schema = mapping(
      {
        a: v.optional(v.string('{field} must be text.')),
        b: v.optional(v.string('{field} must be text.')),
      },
      { notMapping: 'must be a mapping.', unknownKey: () => undefined },
    );
    const parsed = parseSection(schema, { a: 1, b: 'ok' }, { prefix: 's' });
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.invalid('s.a')).toBe(true);
    expect(parsed.invalid('s.b')).toBe(false);
  });
});
