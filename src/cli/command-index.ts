import type { Command } from './command.js';

/**
 * Every command by name, with the summary the main help shows, and how to load
 * it. Each command's module (and msal-node, imapflow, nodemailer, smtp-server,
 * mailparser or node-forge behind it) is imported only when that command runs
 * or shows its help, so `--version`, `--help` and a script calling one command
 * do not pay for all of them at start-up.
 *
 * The name and summary repeat the ones in the command's own module, which
 * other code builds on; test/cli/command-index.test.ts fails when the two
 * disagree or a command is missing here.
 */
export interface CommandEntry {
  /** Words that select it, e.g. `token` or `setup exchange`. */
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const COMMAND_INDEX: readonly CommandEntry[] = [
  {
    name: 'token',
    summary: 'acquire an app-only access token and show what it grants',
    load: async () => (await import('./commands/token.js')).tokenCommand,
  },
  {
    name: 'xoauth2',
    summary: 'print the base64 SASL XOAUTH2 string for a mailbox, for other tools',
    load: async () => (await import('./commands/xoauth2.js')).xoauth2Command,
  },
  {
    name: 'doctor',
    summary: 'check each setup step for a mailbox and name the one that is missing',
    load: async () => (await import('./commands/doctor.js')).doctorCommand,
  },
  {
    name: 'imap folders',
    summary: "list a mailbox's folders with their message counts",
    load: async () => (await import('./commands/imap.js')).imapFoldersCommand,
  },
  {
    name: 'imap list',
    summary: 'list the messages of a folder: UID, date, sender, size, flags and subject',
    load: async () => (await import('./commands/imap.js')).imapListCommand,
  },
  {
    name: 'imap fetch',
    summary: 'write one message, exactly as the server stores it (RFC 822), to stdout or a file',
    load: async () => (await import('./commands/imap.js')).imapFetchCommand,
  },
  {
    name: 'send',
    summary: 'send one message through Exchange Online (SMTP, XOAUTH2) and print its Message-ID',
    load: async () => (await import('./commands/send.js')).sendCommand,
  },
  {
    name: 'setup exchange',
    summary:
      'write the PowerShell script that gives the app IMAP/POP/SMTP access to Exchange Online mailboxes',
    load: async () => (await import('./commands/setup-exchange.js')).setupExchangeCommand,
  },
  {
    name: 'setup entra',
    summary: 'print the Entra ID setup (app, permissions, consent, certificate) as a script',
    load: async () => (await import('./commands/setup-entra.js')).setupEntraCommand,
  },
  {
    name: 'setup cert',
    summary: 'make a self-signed certificate credential for the app registration',
    load: async () => (await import('./commands/setup-cert.js')).setupCertCommand,
  },
  {
    name: 'setup consent-url',
    summary: "print the admin-consent URL that grants the app's Exchange Online permissions",
    load: async () => (await import('./commands/setup-consent-url.js')).setupConsentUrlCommand,
  },
  {
    name: 'credentials check',
    summary:
      "list the app's secrets and certificates with their end dates; exit 1 if one ends soon",
    load: async () => (await import('./commands/credentials.js')).credentialsCheckCommand,
  },
  {
    name: 'archive',
    summary: 'archive mailboxes as .eml files with a manifest; incremental and crash-safe',
    load: async () => (await import('./commands/archive.js')).archiveCommand,
  },
  {
    name: 'archive verify',
    summary: 're-hash an archive against its manifests; report missing, altered and extra files',
    load: async () => (await import('./commands/archive.js')).archiveVerifyCommand,
  },
  {
    name: 'migrate',
    summary:
      'copy a mailbox into another over IMAP: folders, flags and dates; resumable, no duplicates',
    load: async () => (await import('./commands/migrate.js')).migrateCommand,
  },
  {
    name: 'worker',
    summary:
      'run queued archive and migrate jobs (from `--queue`) until stopped; start one per machine',
    load: async () => (await import('./commands/worker.js')).workerCommand,
  },
  {
    name: 'jobs status',
    summary: 'show a queued run per mailbox: waiting, active (worker, progress), done, failed',
    load: async () => (await import('./commands/jobs.js')).jobsStatusCommand,
  },
  {
    name: 'jobs retry',
    summary: "put a run's failed (and with no --failed, its done) mailboxes back in the queue",
    load: async () => (await import('./commands/jobs.js')).jobsRetryCommand,
  },
  {
    name: 'relay',
    summary:
      'accept mail from legacy devices over SMTP and submit it to Exchange Online with XOAUTH2',
    load: async () => (await import('./commands/relay.js')).relayCommand,
  },
  {
    name: 'relay hash-password',
    summary: 'read a password on stdin and print its scrypt hash (PHC format) for relay.users',
    load: async () => (await import('./commands/relay.js')).relayHashPasswordCommand,
  },
  {
    name: 'proxy',
    summary:
      'let password-only IMAP/POP3 clients read Exchange Online mailboxes, the proxy logging in with the app',
    load: async () => (await import('./commands/proxy.js')).proxyCommand,
  },
  {
    name: 'proxy hash-password',
    summary: 'read a password on stdin and print its scrypt hash (PHC format) for proxy.users',
    load: async () => (await import('./commands/proxy.js')).proxyHashPasswordCommand,
  },
  {
    name: 'relay status',
    summary: 'show the relay spool: queued messages, dead letters, and whether a relay is running',
    load: async () => (await import('./commands/relay.js')).relayStatusCommand,
  },
  {
    name: 'relay retry',
    summary: 'send dead or waiting messages again now',
    load: async () => (await import('./commands/relay.js')).relayRetryCommand,
  },
  {
    name: 'sandbox start',
    summary:
      'start a local Microsoft 365 stand-in (token service, IMAP, POP3, SMTP) and print its settings',
    load: async () => (await import('./commands/sandbox.js')).sandboxStartCommand,
  },
  {
    name: 'sandbox run',
    summary:
      'run the sandbox in the foreground until stopped (what `sandbox start` runs in the background)',
    load: async () => (await import('./commands/sandbox.js')).sandboxRunCommand,
  },
  {
    name: 'sandbox env',
    summary: "print the running sandbox's settings as `export` lines or JSON",
    load: async () => (await import('./commands/sandbox.js')).sandboxEnvCommand,
  },
  {
    name: 'sandbox status',
    summary: 'show whether a sandbox runs, its endpoints, mailboxes and apps with their grants',
    load: async () => (await import('./commands/sandbox.js')).sandboxStatusCommand,
  },
  {
    name: 'sandbox stop',
    summary: 'stop the running sandbox, leaving no process behind (its folder stays)',
    load: async () => (await import('./commands/sandbox.js')).sandboxStopCommand,
  },
  {
    name: 'sandbox grant',
    summary:
      "give an app access to a mailbox in the running sandbox (Exchange's Add-MailboxPermission)",
    load: async () => (await import('./commands/sandbox.js')).sandboxGrantCommand,
  },
  {
    name: 'sandbox revoke',
    summary:
      "take an app's access to a mailbox away in the running sandbox (Remove-MailboxPermission)",
    load: async () => (await import('./commands/sandbox.js')).sandboxRevokeCommand,
  },
  {
    name: 'sandbox reset',
    summary: 'stop the sandbox and delete its folder: mail, grants, secrets and CA',
    load: async () => (await import('./commands/sandbox.js')).sandboxResetCommand,
  },
  {
    name: 'sandbox fault',
    summary:
      'make the running sandbox misbehave as Microsoft 365 does: throttling, outages, expiry',
    load: async () => (await import('./commands/sandbox.js')).sandboxFaultCommand,
  },
];
