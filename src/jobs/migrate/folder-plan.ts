/**
 * Pure: which source folder goes to which destination folder. Names are the
 * decoded paths imapflow lists (UTF-7 and UTF8=ACCEPT are its business). A
 * path is cut at the source's hierarchy delimiter and joined again with the
 * destination's, so `Projects.2024` on a `.` server becomes `Projects/2024`
 * on a `/` server; a name holding the destination's delimiter (`a/b` on a `.`
 * server) cannot exist there and gets `_` in its place. Special-use folders
 * go to the destination's folder of the same use (or the name Exchange
 * gives it), INBOX to INBOX, then `--map` overrides.
 */
import { folderSelected, isSelectable } from '../mailbox-read/folder-filter.js';

/** One LIST entry, as imapflow reports it. */
export interface ListedFolder {
  path: string;
  delimiter: string;
  flags: ReadonlySet<string>;
  specialUse?: string | undefined;
  subscribed?: boolean;
}

export interface FolderMapping {
  /** Source path as listed (decoded). */
  source: string;
  /** Destination path (decoded), with the destination's delimiter. */
  destination: string;
  specialUse?: string;
  subscribed: boolean;
  /** Whether the destination already lists it. */
  exists: boolean;
  /** Characters that had to change because the destination's delimiter was in a name. */
  renamed: boolean;
}

export interface FolderPlanOptions {
  /** Source folders to take (`*` wildcard); all when empty. */
  include?: readonly string[];
  exclude?: readonly string[];
  /** `SRC=DEST` overrides: DEST replaces SRC and the start of SRC's subfolders' paths. */
  map?: readonly { source: string; destination: string }[];
}

/** The names Exchange Online gives its special folders. */
export const EXCHANGE_SPECIAL_NAMES: Readonly<Record<string, string>> = {
  '\\Sent': 'Sent Items',
  '\\Drafts': 'Drafts',
  '\\Trash': 'Deleted Items',
  '\\Junk': 'Junk Email',
  '\\Archive': 'Archive',
};

export function planFolders(
  source: readonly ListedFolder[],
  destination: readonly ListedFolder[],
  options: FolderPlanOptions = {},
): FolderMapping[] {
  const destDelimiter = destination.find((f) => f.delimiter)?.delimiter ?? '/';
  const destPaths = new Map(destination.map((f) => [f.path.toLowerCase(), f.path]));
  const destSpecial = new Map<string, string>();
  for (const f of destination) {
    if (f.specialUse && !destSpecial.has(f.specialUse)) destSpecial.set(f.specialUse, f.path);
  }
  const bySource = new Map(source.map((f) => [f.path, f]));
  // imapflow leaves `subscribed` unset for a folder that is not; a server that reports no
  // subscriptions at all (none set) has every folder taken as subscribed.
  const subscriptionsKnown = source.some((f) => f.subscribed === true);
  const mapped = new Map<string, { path: string; renamed: boolean }>();

  const destinationOf = (folder: ListedFolder): { path: string; renamed: boolean } => {
    const known = mapped.get(folder.path);
    if (known) return known;
    let result: { path: string; renamed: boolean };
    const delimiter = folder.delimiter || destDelimiter;
    const cut = folder.path.lastIndexOf(delimiter);
    const name = cut < 0 || !folder.delimiter ? folder.path : folder.path.slice(cut + 1);
    const parentPath = cut < 0 || !folder.delimiter ? undefined : folder.path.slice(0, cut);
    const special = folder.specialUse ? EXCHANGE_SPECIAL_NAMES[folder.specialUse] : undefined;
    const specialPath = folder.specialUse ? destSpecial.get(folder.specialUse) : undefined;
    if (isInbox(folder.path)) {
      result = { path: 'INBOX', renamed: false };
    } else if (special !== undefined && (parentPath === undefined || isInbox(parentPath))) {
      // Top level or under INBOX (Courier-style servers keep every folder there).
      result = { path: specialPath ?? special, renamed: false };
    } else {
      const safe = name.split(destDelimiter).join('_');
      const renamed = safe !== name;
      if (parentPath === undefined) {
        result = { path: safe, renamed };
      } else {
        const parent = bySource.get(parentPath) ?? {
          path: parentPath,
          delimiter: folder.delimiter,
          flags: new Set<string>(),
        };
        const up = destinationOf(parent);
        result = { path: `${up.path}${destDelimiter}${safe}`, renamed: renamed || up.renamed };
      }
    }
    mapped.set(folder.path, result);
    return result;
  };

  const plan: FolderMapping[] = [];
  for (const folder of source) {
    if (!isSelectable(folder.flags)) continue;
    if (
      !folderSelected(folder.path, {
        include: options.include ?? [],
        exclude: options.exclude ?? [],
      })
    )
      continue;
    let { path, renamed } = destinationOf(folder);
    const override = mapOverride(folder.path, folder.delimiter, destDelimiter, options.map ?? []);
    if (override !== undefined) {
      path = override;
      renamed = false;
    }
    const existing = destPaths.get(path.toLowerCase());
    // INBOX is case-insensitive (RFC 3501); other names keep the destination's own spelling when it has them.
    const final = existing ?? path;
    plan.push({
      source: folder.path,
      destination: final,
      ...(folder.specialUse ? { specialUse: folder.specialUse } : {}),
      subscribed: folder.subscribed === true || !subscriptionsKnown,
      exists: existing !== undefined,
      renamed,
    });
  }
  return plan;
}

/** The most specific `--map` whose source is this folder or one of its ancestors. */
function mapOverride(
  path: string,
  sourceDelimiter: string,
  destDelimiter: string,
  map: readonly { source: string; destination: string }[],
): string | undefined {
  let best: { source: string; destination: string } | undefined;
  for (const entry of map) {
    const matches =
      entry.source === path ||
      (sourceDelimiter !== '' && path.startsWith(`${entry.source}${sourceDelimiter}`));
    if (matches && (!best || entry.source.length > best.source.length)) best = entry;
  }
  if (!best) return undefined;
  if (best.source === path) return best.destination;
  const rest = path.slice(best.source.length + sourceDelimiter.length).split(sourceDelimiter);
  return [best.destination, ...rest.map((part) => part.split(destDelimiter).join('_'))].join(
    destDelimiter,
  );
}

function isInbox(path: string): boolean {
  return path.toUpperCase() === 'INBOX';
}

/** `SRC=DEST`, split at the first `=`: a destination may hold `=`, a source name cannot. */
export function parseMapEntry(text: string): { source: string; destination: string } | undefined {
  const at = text.indexOf('=');
  if (at <= 0 || at === text.length - 1) return undefined;
  return { source: text.slice(0, at), destination: text.slice(at + 1) };
}
