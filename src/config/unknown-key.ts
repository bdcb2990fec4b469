/**
 * How a config key that is not a setting is named in messages. Such a key may
 * be a secret pasted as a key, or a value that lost its key, so it is quoted
 * only when it looks like a name; the schema adapter (schema.ts) names
 * problem fields by the same rule.
 */

/** A short identifier: a letter, then up to 39 letters, digits or `_`. */
export function looksLikeSettingName(key: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_]{0,39}$/.test(key);
}

/** `'imap.port'`, or a description of the key that does not quote it. */
export function quotedKey(key: string, prefix = ''): string {
  return looksLikeSettingName(key)
    ? `'${prefix}${key}'`
    : `${prefix ? `in ${prefix.slice(0, -1)}, ` : ''}(a key of ${key.length} characters that is no setting name, not shown in case it is a misplaced secret)`;
}
