/**
 * Which message blobs without manifest lines a run may record. Commits run
 * several at a time (commit-window.ts), so a crash can leave a message
 * committed while an earlier one of its folder is not. Recording the later
 * one would move the folder's checkpoint past the earlier one, which would
 * then never be archived. So each blob names the message committed before it
 * in its folder (`after`), and a blob is recorded only when that one is in
 * the manifest or is itself recorded: a chain back to the checkpoint. The
 * first commit of a run names none; everything before it was in the manifest
 * when the run planned the folder.
 */

export interface ChainLink {
  folder: string;
  uidValidity: number;
  uid: number;
  /** The UID committed just before it in the same folder and UIDVALIDITY, if any. */
  after: number | undefined;
}

/**
 * Splits blobs into those whose chain is whole (recorded) and those behind a
 * gap (fetched again). `inManifest` says whether the manifest lists a UID.
 */
export function splitByChain<T extends ChainLink>(
  blobs: readonly T[],
  inManifest: (folder: string, uidValidity: number, uid: number) => boolean,
): { whole: T[]; broken: T[] } {
  const whole: T[] = [];
  const broken: T[] = [];
  const kept = new Set<string>();
  const key = (folder: string, uidValidity: number, uid: number) =>
    JSON.stringify([folder, uidValidity, uid]);
  // A link names a lower UID, so in UID order every link is decided before the ones naming it.
  const ordered = [...blobs].sort((a, b) => a.uid - b.uid);
  for (const blob of ordered) {
    const { folder, uidValidity, after } = blob;
    const linked =
      after === undefined ||
      inManifest(folder, uidValidity, after) ||
      kept.has(key(folder, uidValidity, after));
    if (linked) {
      kept.add(key(folder, uidValidity, blob.uid));
      whole.push(blob);
    } else {
      broken.push(blob);
    }
  }
  return { whole, broken };
}
