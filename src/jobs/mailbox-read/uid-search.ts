import { ProtocolError } from '../../errors.js';
import type { FolderAccess, FolderRef } from './folder-access.js';
import { newUids, searchCriteria } from './folder-plan.js';

/**
 * The UIDs above `afterUid` (and on or after `since`), sorted: `UID SEARCH
 * UID n:*`, dropping the one message `n:*` returns when nothing is new.
 */
export async function searchNewUids(
  access: FolderAccess,
  folder: FolderRef,
  afterUid: number,
  since?: Date,
): Promise<number[]> {
  const found = await access.run(folder, async (c) => {
    const answer = await c.search(searchCriteria(afterUid, since), { uid: true });
    if (Array.isArray(answer)) return answer;
    // imapflow answers `false` both for a refusal and for a connection that went away
    // meanwhile. Neither means "nothing new".
    if (!c.usable) throw Object.assign(new Error('connection lost'), { code: 'NoConnection' });
    throw new ProtocolError({
      code: 'IMAP_SEARCH_REFUSED',
      message: `The server refused UID SEARCH in ${folder.path}`,
      remedy: `Run the ${access.terms.name} again later; the folder is searched again.`,
    });
  });
  return newUids(found, afterUid);
}
