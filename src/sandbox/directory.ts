/**
 * What the sandbox's tenant holds: mailboxes (with mail in some folders),
 * app registrations with their credential, application permissions and the
 * mailboxes each was granted (`Add-MailboxPermission`). The seeded one shows
 * every setup step `doctor` checks; `--directory FILE` replaces it.
 */
import * as v from 'valibot';
import { ConfigurationError } from '../errors.js';

export const IMAP_ROLE = 'IMAP.AccessAsApp';
export const SMTP_ROLE = 'SMTP.SendAsApp';

const address = v.pipe(v.string(), v.regex(/^[^\s@]+@[^\s@]+$/), v.toLowerCase());
const uuid = v.pipe(v.string(), v.uuid());

const MailboxSchema = v.strictObject({
  address,
  /** Folder → how many messages to seed there (`INBOX`, `Archive/2024`). */
  folders: v.optional(
    v.record(
      v.pipe(v.string(), v.minLength(1)),
      v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1000)),
    ),
    {},
  ),
});

const AppSchema = v.strictObject({
  /** Short name for `--app` (the client id works too). */
  name: v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9-]*$/)),
  clientId: uuid,
  credential: v.picklist(['secret', 'certificate']),
  roles: v.array(v.picklist([IMAP_ROLE, SMTP_ROLE])),
  mailboxes: v.array(address),
});

export const DirectorySchema = v.strictObject({
  tenant: v.strictObject({ id: uuid, domain: v.pipe(v.string(), v.regex(/^[a-z0-9.-]+$/)) }),
  mailboxes: v.pipe(v.array(MailboxSchema), v.minLength(1)),
  apps: v.pipe(v.array(AppSchema), v.minLength(1)),
});

export type SandboxDirectory = v.InferOutput<typeof DirectorySchema>;
export type SandboxApp = SandboxDirectory['apps'][number];

export const SEEDED_DIRECTORY: SandboxDirectory = {
  tenant: { id: '7d3b5c1e-2f4a-4b6c-8d9e-0a1b2c3d4e5f', domain: 'contoso.test' },
  mailboxes: [
    { address: 'archive@contoso.test', folders: { INBOX: 3, 'Archive/2024': 2, 'Sent Items': 1 } },
    { address: 'alerts@contoso.test', folders: { INBOX: 2 } },
    { address: 'ceo@contoso.test', folders: { INBOX: 1, Projects: 2 } },
  ],
  apps: [
    {
      name: 'archiver',
      clientId: '11111111-1111-4111-8111-111111111111',
      credential: 'secret',
      roles: [IMAP_ROLE, SMTP_ROLE],
      mailboxes: ['archive@contoso.test', 'alerts@contoso.test', 'ceo@contoso.test'],
    },
    {
      name: 'cert-app',
      clientId: '22222222-2222-4222-8222-222222222222',
      credential: 'certificate',
      roles: [IMAP_ROLE, SMTP_ROLE],
      mailboxes: ['archive@contoso.test'],
    },
    {
      name: 'no-imap-role',
      clientId: '33333333-3333-4333-8333-333333333333',
      credential: 'secret',
      roles: [SMTP_ROLE],
      mailboxes: ['archive@contoso.test'],
    },
    {
      name: 'alerts-only',
      clientId: '44444444-4444-4444-8444-444444444444',
      credential: 'secret',
      roles: [IMAP_ROLE, SMTP_ROLE],
      mailboxes: ['alerts@contoso.test'],
    },
  ],
};

/** A directory from JSON text (`--directory FILE`); `source` names the file in the error. */
export function parseDirectory(text: string, source: string): SandboxDirectory {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw directoryError(source, [(error as Error).message]);
  }
  const result = v.safeParse(DirectorySchema, json);
  if (!result.success) {
    // Paths and expectations only: never the values, which may hold anything.
    throw directoryError(
      source,
      result.issues.map((issue) => `${v.getDotPath(issue) ?? '(top)'}: expected ${issue.expected}`),
    );
  }
  return result.output;
}

/** The app named `nameOrId` (its name or client id). */
export function findApp(directory: SandboxDirectory, nameOrId: string): SandboxApp | undefined {
  const wanted = nameOrId.toLowerCase();
  return directory.apps.find((app) => app.name === wanted || app.clientId === wanted);
}

function directoryError(source: string, problems: string[]): ConfigurationError {
  return new ConfigurationError({
    code: 'SANDBOX_DIRECTORY_INVALID',
    message: `The sandbox directory ${source} cannot be used: ${problems.slice(0, 5).join('; ')}`,
    remedy:
      'Give a JSON object with tenant {id, domain}, mailboxes [{address, folders}] and apps [{name, clientId, credential, roles, mailboxes}], as `mailbridge sandbox start --help` shows.',
  });
}
