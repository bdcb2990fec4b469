/**
 * Pure: which folders a run that reads a mailbox takes. Patterns are exact IMAP folder
 * paths as the server lists them (after imapflow decoded modified UTF-7, so
 * `Ünïcödé`, not `&ANw-n&AO8-c&APY-d&AOk-`), compared case-sensitively, with
 * `*` matching any run of characters, the hierarchy separator included:
 * `Archive/*` takes every folder below `Archive`, but not `Archive` itself.
 */

import { closestName } from '../../util/did-you-mean.js';
import { displayText } from '../../util/display-text.js';

export function matchesPattern(pattern: string, path: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === path;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (path.length < first.length + last.length) return false;
  if (!path.startsWith(first) || !path.endsWith(last)) return false;
  // Middle parts in order, each as early as possible, between the fixed ends.
  let at = first.length;
  const end = path.length - last.length;
  for (const part of parts.slice(1, -1)) {
    if (part === '') continue;
    const found = path.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

export interface FolderFilter {
  /** Folders to take; all when empty. */
  include?: readonly string[];
  /** Folders to leave out; wins over `include`. */
  exclude?: readonly string[];
}

export function folderSelected(path: string, filter: FolderFilter): boolean {
  const include = filter.include ?? [];
  const exclude = filter.exclude ?? [];
  if (include.length > 0 && !include.some((p) => matchesPattern(p, path))) return false;
  return !exclude.some((p) => matchesPattern(p, path));
}

/** Include patterns that matched no folder: usually a typo the user wants to hear about. */
export function unmatchedPatterns(paths: readonly string[], patterns: readonly string[]): string[] {
  return patterns.filter((p) => !paths.some((path) => matchesPattern(p, path)));
}

/**
 * "did you mean" for each pattern with a close folder name, as the start of a
 * remedy (each ending in a space), or '' when none is close.
 */
export function folderSuggestions(patterns: readonly string[], paths: readonly string[]): string {
  const hints = patterns.flatMap((pattern) => {
    const close = closestName(pattern, paths);
    return close ? [`did you mean '${displayText(close)}' for '${displayText(pattern)}'?`] : [];
  });
  return hints.length ? `${hints.join(' ')} ` : '';
}

/**
 * Folders that can be selected: `\Noselect` and `\NonExistent` entries are
 * only names in the hierarchy (RFC 3501, RFC 5258) and hold no messages.
 */
export function isSelectable(flags: ReadonlySet<string> | undefined): boolean {
  if (!flags) return true;
  for (const flag of flags) {
    const f = flag.toLowerCase();
    if (f === '\\noselect' || f === '\\nonexistent') return false;
  }
  return true;
}
