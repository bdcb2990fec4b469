/**
 * Pure: which flags go with a message. The four system flags a person sets
 * (\Seen, \Answered, \Flagged, \Draft) always; keywords only where the
 * destination keeps them (PERMANENTFLAGS lists them or holds `\*`); never
 * \Deleted (it would be expunged) or \Recent (only a server sets it).
 */
const SYSTEM_FLAGS = new Map(
  ['\\Seen', '\\Answered', '\\Flagged', '\\Draft'].map((f) => [f.toLowerCase(), f]),
);

export function flagsToCopy(
  flags: Iterable<string>,
  permanentFlags: ReadonlySet<string> | undefined,
): string[] {
  const permanent = permanentFlags
    ? new Set([...permanentFlags].map((f) => f.toLowerCase()))
    : undefined;
  const keywordsAllowed = (keyword: string) =>
    !permanent || permanent.has('\\*') || permanent.has(keyword.toLowerCase());
  const out: string[] = [];
  for (const flag of flags) {
    const system = SYSTEM_FLAGS.get(flag.toLowerCase());
    if (system) out.push(system);
    else if (!flag.startsWith('\\') && keywordsAllowed(flag)) out.push(flag);
  }
  return out;
}

/** `1:3,7,9:10` for UIDs in any order: one short command instead of thousands of numbers. */
export function uidSet(uids: readonly number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
