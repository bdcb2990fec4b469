/**
 * Whether a string is one bare mail address (`local@domain.tld`), nothing more.
 *
 * Deliberately narrower than RFC 5322: no display names, no comments, no
 * quoted local parts, no lists. Mail libraries parse such a string leniently
 * (a line break or a second `<…>` becomes part of a display name and another
 * address wins), so a value that is not plainly one address is refused
 * before it reaches one. Letters of every script are allowed (SMTPUTF8 and
 * internationalised domains).
 */
const LOCAL_CHAR = "[\\p{L}\\p{M}\\p{N}!#$%&'*+/=?^_`{|}~-]";
const LOCAL = `${LOCAL_CHAR}+(?:\\.${LOCAL_CHAR}+)*`;
const LABEL = '[\\p{L}\\p{M}\\p{N}](?:[\\p{L}\\p{M}\\p{N}-]{0,61}[\\p{L}\\p{M}\\p{N}])?';
const ADDRESS = new RegExp(`^(${LOCAL})@(${LABEL}(?:\\.${LABEL})+)$`, 'u');

export function isMailAddress(text: string): boolean {
  const m = ADDRESS.exec(text);
  return m !== null && (m[1] as string).length <= 64 && text.length <= 254;
}
