/**
 * Moves a mailbox from one Microsoft 365 tenant to another (a merger, a
 * split): each side through its own configuration file naming its tenant,
 * app and credential. Run it again at the cut-over: it copies only what is
 * new and brings read/flagged changes made meanwhile across.
 *
 *   npx tsx examples/migrate-tenants.ts fabrikam.yaml bob@fabrikam.com contoso.yaml bob@contoso.com
 */
import { isMailbridgeError, loadConfig, migrateMailbox } from 'm365-mailbridge';

const [fromFile, fromMailbox, toFile, toMailbox] = process.argv.slice(2);
if (!fromFile || !fromMailbox || !toFile || !toMailbox) {
  console.error('usage: migrate-tenants.ts FROM-CONFIG FROM-MAILBOX TO-CONFIG TO-MAILBOX');
  process.exit(2);
}

try {
  // Each file is its side's identity: AZURE_TENANT_ID and the like in this shell change
  // neither side; other variables (a CA file, the IMAP host) fill only what a file leaves out.
  const [fromConfig, toConfig] = await Promise.all([
    loadConfig({ file: fromFile, fileIsIdentity: true }),
    loadConfig({ file: toFile, fileIsIdentity: true }),
  ]);
  const result = await migrateMailbox({
    from: `m365:${fromMailbox}`,
    to: `m365:${toMailbox}`,
    fromConfig,
    toConfig,
    syncFlags: true,
  });
  console.log(
    `${result.copied} copied, ${result.alreadyPresent} already there, flags updated on ${result.flagsUpdated}, ${result.skipped} refused`,
  );
  for (const f of result.folders) {
    for (const s of f.skipped) console.log(`  ${f.source} UID ${s.uid} refused: ${s.reason}`);
  }
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  if (!isMailbridgeError(error)) throw error;
  console.error(`${error.code}: ${error.message}`);
  process.exitCode = error.exitCode;
}
