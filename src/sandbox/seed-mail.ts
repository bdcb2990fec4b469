/**
 * Mail already in the sandbox's mailboxes, written straight into Dovecot's
 * Maildirs (the layout mail-servers.ts configures: `mail/DOMAIN/USER/Maildir`,
 * folders as plain subdirectories) before it serves them: messages in several
 * folders for `archive`, `migrate` and `imap list` to find.
 */
import { chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SeedMailbox {
  address: string;
  folders: Readonly<Record<string, number>>;
}

/** Seeds each mailbox that has no Maildir yet (a restarted sandbox keeps its mail). */
export function seedMailboxes(mailRoot: string, mailboxes: readonly SeedMailbox[]): void {
  // Dovecot's mail processes own the mail (the `mail` user when run as root).
  const { uid, gid } = statSync(mailRoot);
  const made = (path: string) => {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    chownSync(path, uid, gid);
  };
  const start = Date.UTC(2024, 0, 15, 9, 0, 0);
  let serial = 0;
  for (const mailbox of mailboxes) {
    const [local = '', domain = ''] = mailbox.address.split('@');
    const maildir = join(mailRoot, domain, local, 'Maildir');
    if (existsSync(maildir)) continue;
    for (const path of [join(mailRoot, domain), join(mailRoot, domain, local)]) made(path);
    made(maildir);
    for (const [folder, count] of Object.entries(mailbox.folders)) {
      const parts = folder.toUpperCase() === 'INBOX' ? [] : folder.split('/');
      // Every level of a nested folder (`Archive`, then `Archive/2024`) belongs to the mail user.
      for (let depth = 1; depth <= parts.length; depth++)
        made(join(maildir, ...parts.slice(0, depth)));
      const base = join(maildir, ...parts);
      for (const sub of ['cur', 'new', 'tmp']) made(join(base, sub));
      for (let i = 1; i <= count; i++) {
        serial++;
        const date = new Date(start + serial * 3_600_000);
        const text = seedMessage(mailbox.address, folder, i, date, serial);
        const name = `${Math.floor(date.getTime() / 1000)}.M${serial}P0.sandbox,S=${Buffer.byteLength(text)}:2,${i === 1 ? '' : 'S'}`;
        const file = join(base, 'cur', name);
        writeFileSync(file, text, { mode: 0o600 });
        chownSync(file, uid, gid);
      }
    }
  }
}

function seedMessage(
  address: string,
  folder: string,
  n: number,
  date: Date,
  serial: number,
): string {
  const domain = address.split('@')[1] ?? 'contoso.test';
  return [
    `From: Sandbox Sender <sender${n}@fabrikam.test>`,
    `To: <${address}>`,
    `Subject: ${folder} message ${n}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <seed-${serial}@${domain}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Message ${n} in ${folder} of ${address}, seeded by mailbridge sandbox.`,
    '',
  ].join('\r\n');
}
