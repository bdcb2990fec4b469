/**
 * The one "did you mean" for names a user typed: settings, commands, flags.
 * Case, `-`, `_` and spaces are ignored, so `--client_id`, `clientid` and
 * `client-id` all find `clientId`.
 */
export function closestName(
  typed: string,
  known: readonly string[],
  maxDistance = 2,
): string | undefined {
  const simple = (value: string) => value.toLowerCase().replace(/[-_\s]/g, '');
  const target = simple(typed);
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const d = editDistance(target, simple(candidate));
    if (d <= maxDistance && (!best || d < best.distance)) best = { name: candidate, distance: d };
  }
  return best?.name;
}

/** Edit distance counting a swap of two neighbours as one edit (`smpt` → `smtp`, `tokne` → `token`). */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}
