/**
 * Copies a mailbox from another provider's IMAP server into Microsoft 365,
 * printing each folder as it finishes. Run it again to copy only what is new.
 *
 *   export AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_CERTIFICATE_PATH=…
 *   read -rs MAILBRIDGE_FROM_PASSWORD && export MAILBRIDGE_FROM_PASSWORD
 *   npx tsx examples/migrate-mailbox.ts 'imaps://bob%40example.org@mail.example.org' bob@contoso.com
 */
import { isMailbridgeError, loadConfig, migrateMailbox } from 'm365-mailbridge';

const [from, mailbox] = process.argv.slice(2);
if (!from || !mailbox) {
  console.error('usage: migrate-mailbox.ts imaps://USER@HOST M365-MAILBOX');
  process.exit(2);
}

try {
  // The Microsoft 365 side uses the usual settings; the source's password comes
  // from MAILBRIDGE_FROM_PASSWORD (or pass fromPassword), never from the URL.
  const config = await loadConfig();
  const result = await migrateMailbox({
    from,
    to: `m365:${mailbox}`,
    toConfig: config,
    exclude: ['Trash'],
    onProgress(event) {
      if (event.type !== 'folder-done') return;
      const f = event.result;
      console.log(
        `${f.source} → ${f.destination}: ${f.copied} copied, ${f.alreadyPresent} already there`,
      );
      for (const s of f.skipped) console.log(`  refused UID ${s.uid}: ${s.reason}`);
    },
  });
  console.log(`${result.copied} copied, ${result.skipped} refused; state in ${result.stateDir}`);
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  if (!isMailbridgeError(error)) throw error;
  console.error(`${error.code}: ${error.message}`);
  process.exitCode = error.exitCode;
}
