/**
 * `--sync-flags`: flag changes on messages copied by an earlier run, brought
 * across through the state's map of source UID → destination UID. Only the
 * flags a copy carries are touched (\Seen, \Answered, \Flagged, \Draft and
 * the keywords the destination keeps); \Deleted and \Recent never, in either
 * direction: a \Deleted set at the source must not expunge mail at the
 * destination, and \Recent belongs to the server.
 */
import type { ImapSession } from '../../clients/imap-session.js';
import type { FolderMapping } from './folder-plan.js';
import { flagsToCopy, uidSet } from './message-flags.js';
import type { MigrationState } from './state.js';

export interface SyncFlagsContext {
  source: ImapSession;
  destination: ImapSession;
  state: MigrationState;
  dryRun: boolean;
}

/** Messages whose flags changed at the destination (with dryRun: would change). */
export async function syncFolderFlags(
  ctx: SyncFlagsContext,
  mapping: FolderMapping,
): Promise<number> {
  const status = await ctx.source.open(mapping.source, { readOnly: true });
  const placed = ctx.state.placements(mapping.source, String(status.uidValidity));
  if (placed.size === 0 || status.exists === 0) return 0;
  const target = await ctx.destination.open(mapping.destination, { readOnly: ctx.dryRun });
  const destValidity = String(target.uidValidity);
  // Placed in a destination folder since recreated: nothing there to update.
  const here = [...placed].filter(([, p]) => p.df === mapping.destination && p.dv === destValidity);
  if (here.length === 0 || target.exists === 0) return 0;

  // A dry run only EXAMINEs, and a read-only folder has no PERMANENTFLAGS: counted as if it kept keywords.
  const permanent = ctx.dryRun ? undefined : target.permanentFlags;
  const sourceFlags = await flagsByUid(ctx.source);
  const destFlags = await flagsByUid(ctx.destination);
  const adds = new Map<string, number[]>();
  const removes = new Map<string, number[]>();
  let changed = 0;
  for (const [uid, { du }] of here) {
    const from = sourceFlags.get(uid);
    const to = destFlags.get(du);
    // Expunged on either side since it was copied: nothing to bring across.
    if (!from || !to) continue;
    const wanted = byKey(flagsToCopy(from, permanent));
    const held = byKey(flagsToCopy(to, permanent));
    const add = [...wanted].filter(([key]) => !held.has(key)).map(([, flag]) => flag);
    const remove = [...held].filter(([key]) => !wanted.has(key)).map(([, flag]) => flag);
    if (add.length === 0 && remove.length === 0) continue;
    changed++;
    if (add.length > 0) group(adds, add, du);
    if (remove.length > 0) group(removes, remove, du);
  }
  if (ctx.dryRun || changed === 0) return changed;
  await ctx.destination.run(async (client) => {
    // Adding and removing a flag twice is harmless: a retry after a drop repeats the lot.
    for (const [flags, uids] of adds)
      await client.messageFlagsAdd(uidSet(uids), flags.split(' '), { uid: true });
    for (const [flags, uids] of removes)
      await client.messageFlagsRemove(uidSet(uids), flags.split(' '), { uid: true });
  });
  return changed;
}

/** Flags of every message of the selected folder, by UID: one FETCH of a few bytes each. */
async function flagsByUid(session: ImapSession): Promise<Map<number, Set<string>>> {
  const fetched = await session.run((c) => c.fetchAll('1:*', { uid: true, flags: true }));
  return new Map(fetched.map((m) => [m.uid, m.flags ?? new Set<string>()]));
}

/** IMAP flags compare without regard to case. */
function byKey(flags: string[]): Map<string, string> {
  return new Map(flags.map((f) => [f.toLowerCase(), f]));
}

/** One STORE per distinct set of flags. */
function group(groups: Map<string, number[]>, flags: string[], uid: number): void {
  const key = flags.sort().join(' ');
  const uids = groups.get(key);
  if (uids) uids.push(uid);
  else groups.set(key, [uid]);
}
