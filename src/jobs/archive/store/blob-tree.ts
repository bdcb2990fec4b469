/**
 * A blob container (below a prefix) as `archive verify` reads it: one
 * listing, then the manifests and the blobs they name.
 */
import type { ContainerClient } from '@azure/storage-blob';
import { readManifestChunks } from '../manifest.js';
import { MANIFEST_FILE } from '../paths.js';
import {
  type ArchiveTree,
  type VerifyOptions,
  type VerifyReport,
  verifyArchive,
} from '../verify.js';
import { blobStoreError, containerClient } from './blob-client.js';
import { type BlobLocation, parseBlobLocation } from './blob-location.js';
import { hashChunks } from './file-hash.js';

/** `archive verify URL`: a container prefix holding mailboxes, or one mailbox's. */
export async function verifyBlobArchive(
  url: string,
  options?: VerifyOptions,
): Promise<VerifyReport> {
  const location: BlobLocation = parseBlobLocation(url);
  const container = await containerClient(location).catch((error: unknown) => {
    throw blobStoreError(error, 'connect to', location.display);
  });
  return verifyArchive(blobArchiveTree(container, location.prefix, location.display), options);
}

export function blobArchiveTree(
  container: ContainerClient,
  prefix: string,
  location: string,
): ArchiveTree {
  let listing: Promise<Map<string, { leased: boolean }>> | undefined;
  const call = async <T>(doing: string, operation: () => Promise<T>): Promise<T> => {
    try {
      return await operation();
    } catch (error) {
      throw blobStoreError(error, doing, location);
    }
  };
  // Names relative to the prefix.
  const list = () => {
    listing ??= call('list', async () => {
      const names = new Map<string, { leased: boolean }>();
      for await (const item of container.listBlobsFlat({ prefix })) {
        names.set(item.name.slice(prefix.length), {
          leased: item.properties.leaseState === 'leased',
        });
      }
      return names;
    });
    return listing;
  };
  return {
    location,
    async mailboxes() {
      const names = await list();
      if (names.has(MANIFEST_FILE)) return { mailboxes: [''], strays: [] };
      const mailboxes = new Set<string>();
      for (const name of names.keys()) {
        const [top, rest] = splitFirst(name);
        if (rest === MANIFEST_FILE) mailboxes.add(`${top}/`);
      }
      const strays = [...names.keys()].filter((name) => !mailboxes.has(`${splitFirst(name)[0]}/`));
      return { mailboxes: [...mailboxes], strays };
    },
    readManifest: (mailbox, onRecord) =>
      call('read a manifest of', async () => {
        const download = await container
          .getBlobClient(`${prefix}${mailbox}${MANIFEST_FILE}`)
          .download();
        return readManifestChunks(download.readableStreamBody as AsyncIterable<Buffer>, onRecord);
      }),
    isLocked: async (mailbox) => (await list()).get(`${mailbox}${MANIFEST_FILE}`)?.leased ?? false,
    async hash(mailbox, path) {
      if (!(await list()).has(`${mailbox}${path}`)) return 'missing';
      return call('read a message of', async () => {
        const download = await container.getBlobClient(`${prefix}${mailbox}${path}`).download();
        return hashChunks(download.readableStreamBody as AsyncIterable<Buffer>);
      });
    },
    async files(mailbox) {
      const out: string[] = [];
      for (const name of (await list()).keys()) {
        if (name.startsWith(mailbox) && name !== `${mailbox}${MANIFEST_FILE}`) {
          out.push(name.slice(mailbox.length));
        }
      }
      return out;
    },
  };
}

function splitFirst(name: string): [string, string | undefined] {
  const slash = name.indexOf('/');
  return slash < 0 ? [name, undefined] : [name.slice(0, slash), name.slice(slash + 1)];
}
