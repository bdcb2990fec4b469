/**
 * The one schema layer of the config: building blocks on valibot for every
 * section (the settings, `relay:`, `setup.exchange:`, `migrate:`, `proxy:`,
 * `queue:`), and the one adapter from schema issues to `ConfigProblem`s.
 *
 * Messages are ours, never the library's: its default messages quote the
 * value received, which may be a secret pasted in the wrong place. A schema
 * message may hold `{field}` (the problem's field, as the section names it,
 * e.g. `imap.port (MAILBRIDGE_IMAP_PORT)`) and `{section}` (the mapping that
 * holds it), so that one piece (a port, a duration) serves every section.
 */
import * as v from 'valibot';
import type { ConfigProblem } from '../errors.js';
import { closestName } from '../util/did-you-mean.js';
import { looksLikeSettingName, quotedKey } from './unknown-key.js';

/** Stands for the problem's field in a schema message. */
export const FIELD = '{field}';
/** Stands for the mapping that holds the field in a schema message. */
export const SECTION = '{section}';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * What a key's schema receives when its mapping lacks the key, so that the
 * key's own message says what is missing (valibot would give the mapping's).
 */
export const ABSENT: unique symbol = Symbol('absent');

/** A message for a value that may be missing: `missing` when it is, `wrong` otherwise. */
export function whenAbsent(missing: string, wrong: string) {
  return (issue: { input: unknown }) => (issue.input === ABSENT ? missing : wrong);
}

/** Any schema of ours: input unknown, issues of any kind. */
export type AnySchema = v.GenericSchema<unknown, unknown>;

export interface MappingOptions {
  /** When the value is not a mapping. */
  notMapping: string;
  /**
   * The message for a key the mapping does not know, given the closest known
   * key; undefined lets the key through (the top level's job sections).
   */
  unknownKey: (key: string, near: string | undefined, value: unknown) => string | undefined;
  /** How far a typo may be from a known key to be suggested. @default 2 */
  maxDistance?: number;
}

/**
 * A mapping of known keys: each key's schema, and every unknown key reported
 * (all of them, each with its "did you mean", not only the first).
 */
export function mapping<const TEntries extends v.ObjectEntries>(
  entries: TEntries,
  options: MappingOptions,
) {
  const known = Object.keys(entries);
  // A required key's schema runs even when the key is missing (see ABSENT).
  const checked = Object.fromEntries(
    Object.entries(entries).map(([key, schema]) => [
      key,
      schema.type === 'optional' || schema.type === 'nullish'
        ? schema
        : v.optional(schema as AnySchema, () => ABSENT),
    ]),
  ) as unknown as TEntries;
  return v.pipe(
    // valibot's objects take a list too: a mapping here is a plain object only.
    v.custom<Record<string, unknown>>(isPlainObject, options.notMapping),
    v.looseObject(checked, options.notMapping),
    v.rawCheck(({ dataset, addIssue }) => {
      const value = dataset.value;
      if (!isPlainObject(value)) return;
      for (const key of Object.keys(value)) {
        if (known.includes(key)) continue;
        const message = options.unknownKey(
          key,
          closestName(key, known, options.maxDistance),
          value[key],
        );
        if (message === undefined) continue;
        addIssue({
          message,
          path: [{ type: 'object', origin: 'key', input: value, key, value: value[key] }],
        });
      }
    }),
  );
}

/**
 * The unknown-key message of a job's section (`relay:`, `migrate:`, …) and
 * of the mappings inside it: the closest known key, or the known keys.
 */
export function unknownSectionKey(
  key: string,
  near: string | undefined,
  known: readonly string[],
): string {
  const quoted = quotedKey(key, `${SECTION}.`);
  return near
    ? `Unknown setting ${quoted}: did you mean '${SECTION}.${near}'?`
    : `Unknown setting ${quoted}. Known: ${known.join(', ')}.`;
}

/** A mapping of a job's section: its unknown keys are said as `unknownSectionKey` says them. */
export function sectionMapping<const TEntries extends v.ObjectEntries>(
  entries: TEntries,
  notMapping: string,
) {
  return mapping(entries, {
    notMapping,
    unknownKey: (key, near) => unknownSectionKey(key, near, Object.keys(entries)),
  });
}

/** `90s`, `30m`, `24h`, `2d`, `500ms`, or a number of seconds → ms. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    (m[2] as string).toLowerCase() as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Math.round(Number(m[1]) * unit);
}

/** A duration setting, in ms. */
export const duration = parsedBy(
  parseDuration,
  `${FIELD} must be a duration such as 90s, 30m, 24h or 2d.`,
);

/** A string or a list of strings, as a list. */
export const stringList = v.union(
  [
    v.pipe(
      v.string(),
      v.transform((one) => [one]),
    ),
    v.array(v.string()),
  ],
  `${FIELD} must be a list of strings.`,
);

/**
 * A domain rule over a value that passed the checks before it: the first
 * problem it finds, or none. For checks that read better as code than as a chain (a GUID or a
 * domain, a scope, a URL).
 */
export function rule<T>(problemOf: (value: T) => string | undefined) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    // One problem per value: a rule says nothing about a value already found wrong.
    if (!dataset.typed || dataset.issues) return;
    const problem = problemOf(dataset.value);
    if (problem !== undefined) addIssue({ message: problem });
  });
}

/**
 * A value read by a parser of ours (a duration, a size, a listen address):
 * the parser's result, or `message` when it returns undefined.
 */
export function parsedBy<T>(
  parse: (input: unknown) => T | undefined,
  message: string | ((input: unknown) => string),
) {
  return v.pipe(
    v.unknown(),
    v.rawTransform<unknown, T>(({ dataset, addIssue, NEVER }) => {
      const value = parse(dataset.value);
      if (value !== undefined) return value;
      addIssue({ message: typeof message === 'string' ? message : message(dataset.value) });
      return NEVER;
    }),
  );
}

/** A whole number from `min` to `max`, one message for every way of missing it. */
export function wholeNumber(min: number, max: number, message: string) {
  return v.pipe(
    v.number(message),
    v.integer(message),
    v.minValue(min, message),
    v.maxValue(max, message),
  );
}

/** A whole number setting from `min` to `max` (or `alternative`, e.g. ' or false for no limit'). */
export const count = (min: number, max: number, alternative = '') =>
  wholeNumber(min, max, `${FIELD} must be a whole number from ${min} to ${max}${alternative}.`);

/** A true-or-false setting. */
export const flag = v.boolean(`${FIELD} must be true or false.`);

/** A string, trimmed, that is not empty. */
export function text(message: string) {
  return v.pipe(v.string(message), v.trim(), v.nonEmpty(message));
}

/** What a parse gives back: the typed value when there were no problems. */
export type Parsed<T> =
  | { ok: true; value: T; problems: [] }
  | { ok: false; value: unknown; problems: ConfigProblem[]; invalid: (field: string) => boolean };

export interface ProblemOptions {
  /** The field of the whole input (`relay`), or '' for the top level. */
  prefix?: string;
  /** How a field is named in a message. @default the field itself */
  name?: (field: string) => string;
}

/** Parses `input` with `schema`, collecting every problem (never stopping at the first). */
export function parseSection<TSchema extends AnySchema>(
  schema: TSchema,
  input: unknown,
  options: ProblemOptions = {},
): Parsed<v.InferOutput<TSchema>> {
  const result = v.safeParse(schema, input, PARSE_CONFIG);
  if (result.success) return { ok: true, value: result.output, problems: [] };
  const problems = problemsFrom(result.issues, options);
  const fields = result.issues.map((issue) => fieldOf(issue.path, options.prefix ?? ''));
  return {
    ok: false,
    value: result.output,
    problems,
    invalid: (field) =>
      fields.some((f) => f === field || f.startsWith(`${field}.`) || f.startsWith(`${field}[`)),
  };
}

const PARSE_CONFIG: v.Config<v.BaseIssue<unknown>> = {
  abortEarly: false,
  // Only a schema piece without a message of its own gets here: say what was expected, never what came.
  message: (issue) =>
    `${FIELD} is not valid${issue.expected ? ` (expected ${issue.expected})` : ''}.`,
};

/**
 * The one adapter from schema issues to problems: the field from the issue's
 * path (a key that may be a misplaced secret is not shown), the message with
 * `{field}` and `{section}` filled in. The same problem twice (a value that
 * misses a range in two ways) is reported once.
 */
export function problemsFrom(
  issues: readonly v.BaseIssue<unknown>[],
  options: ProblemOptions = {},
): ConfigProblem[] {
  const prefix = options.prefix ?? '';
  const name = options.name ?? ((field: string) => field);
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    const field = fieldOf(issue.path, prefix);
    const section = fieldOf(issue.path?.slice(0, -1), prefix);
    const message = issue.message.replaceAll(FIELD, name(field)).replaceAll(SECTION, section);
    if (!problems.some((p) => p.field === field && p.message === message)) {
      problems.push({ field: field || prefix, message });
    }
  }
  return problems;
}

function fieldOf(path: readonly v.IssuePathItem[] | undefined, prefix: string): string {
  let field = prefix;
  for (const item of path ?? []) {
    const key = (item as { key?: unknown }).key;
    if (typeof key === 'number') field += `[${key}]`;
    else {
      const shown = typeof key === 'string' && looksLikeSettingName(key) ? key : '(unknown key)';
      field += field === '' ? shown : `.${shown}`;
    }
  }
  return field;
}
