/** Items grouped by their `folder`, folders in first-seen order. */
export function byFolder<T extends { folder: string }>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(item.folder) ?? [];
    list.push(item);
    out.set(item.folder, list);
  }
  return out;
}
