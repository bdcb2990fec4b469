/**
 * A nightly archive into Azure Blob Storage: the mailboxes named on the
 * command line into a container, one prefix per night, then the summary.
 * The container URL is the first argument; the credentials come from the
 * environment, never from the command line:
 *
 *   # In Azure: a managed or workload identity with the Storage Blob Data
 *   # Contributor role on the container; nothing to set.
 *   # Elsewhere: the account's connection string, or a SAS connection string.
 *   read -rs AZURE_STORAGE_CONNECTION_STRING && export AZURE_STORAGE_CONNECTION_STRING
 *   npx tsx examples/archive-to-blob.ts azblob://contosoarchive/mail archive@contoso.com
 *
 *   # Against Azurite (npx azurite-blob --blobHost 127.0.0.1 --location /tmp/azurite):
 *   export AZURE_STORAGE_CONNECTION_STRING='UseDevelopmentStorage=true'
 *   npx tsx examples/archive-to-blob.ts http://127.0.0.1:10000/devstoreaccount1/mail archive@contoso.com
 */
import { archiveMailboxes, isMailbridgeError, loadConfig } from 'm365-mailbridge';

const [container, ...mailboxes] = process.argv.slice(2);
if (!container || mailboxes.length === 0) {
  console.error('usage: archive-to-blob.ts CONTAINER_URL MAILBOX...');
  process.exit(2);
}
// One prefix per night: each night's run is complete on its own, and the manifests stay small.
const night = new Date().toISOString().slice(0, 10);

try {
  const config = await loadConfig();
  const run = await archiveMailboxes(config, { mailboxes, outDir: `${container}/${night}` });
  for (const m of run.mailboxes) {
    if ('error' in m) console.error(`${m.mailbox}: ${m.error.code}: ${m.error.message}`);
    else console.log(`${m.mailbox}: ${m.messagesNew} new messages into ${m.directory}`);
  }
  process.exitCode = run.ok ? 0 : 1;
} catch (error) {
  if (!isMailbridgeError(error)) throw error;
  console.error(`error ${error.code}: ${error.message}`);
  process.exitCode = error.exitCode;
}
