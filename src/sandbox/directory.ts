/**
 * What the sandbox's tenant holds: mailboxes (with mail in some folders),
 * app registrations with their credential, application permissions and the
 * mailboxes each was granted (`Add-MailboxPermission`). The seeded one shows
 * every setup step `doctor` checks; `--directory FILE` replaces it.
 */
import * as v from 'valibot';
import { ConfigurationError } from '../errors.js';
import { displayText } from '../util/display-text.js';
import { IMAP_ROLE, POP_ROLE, SMTP_ROLE } from './mail-servers.js';

const address = v.pipe(v.string(), v.regex(/^[^\s@]+@[^\s@]+$/), v.toLowerCase());
const uuid = v.pipe(v.string(), v.uuid());
const domain = v.pipe(v.string(), v.regex(/^[a-z0-9.-]+$/));
const TenantSchema = v.strictObject({ id: uuid, domain });

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
  roles: v.array(v.picklist([IMAP_ROLE, SMTP_ROLE, POP_ROLE])),
  mailboxes: v.array(address),
  /** Domain of the tenant the app is registered in. @default the first tenant */
  tenant: v.optional(domain),
});

export const DirectorySchema = v.strictObject({
  tenant: TenantSchema,
  /** More tenants, for cross-tenant work (tenant-to-tenant migration). */
  otherTenants: v.optional(v.array(TenantSchema)),
  mailboxes: v.pipe(v.array(MailboxSchema), v.minLength(1)),
  apps: v.pipe(v.array(AppSchema), v.minLength(1)),
});

export type SandboxDirectory = v.InferOutput<typeof DirectorySchema>;
export type SandboxApp = SandboxDirectory['apps'][number];
export type SandboxTenant = SandboxDirectory['tenant'];

/** Every tenant of the directory, the first one first. */
export function tenantsOf(directory: SandboxDirectory): SandboxTenant[] {
  return [directory.tenant, ...(directory.otherTenants ?? [])];
}

/** The tenant an app is registered in. */
export function tenantOfApp(directory: SandboxDirectory, app: SandboxApp): SandboxTenant {
  return tenantsOf(directory).find((t) => t.domain === app.tenant) ?? directory.tenant;
}

/** The tenant whose domain `mailbox` is in, when the directory declares it. */
export function tenantOfMailbox(
  directory: SandboxDirectory,
  mailbox: string,
): SandboxTenant | undefined {
  const at = mailbox.toLowerCase().split('@')[1];
  return tenantsOf(directory).find((t) => t.domain === at);
}

/** The tenant named by its domain or id. */
export function findTenant(
  directory: SandboxDirectory,
  domainOrId: string,
): SandboxTenant | undefined {
  const wanted = domainOrId.toLowerCase();
  return tenantsOf(directory).find((t) => t.domain === wanted || t.id === wanted);
}

/**
 * Why `app` may not be granted `mailbox`, or undefined: Exchange grants only
 * service principals of the mailbox's own tenant (a multi-tenant app gets one
 * in each tenant that consents, and a token from there).
 */
export function crossTenantGrant(
  directory: SandboxDirectory,
  app: SandboxApp,
  mailbox: string,
): string | undefined {
  const home = tenantOfApp(directory, app);
  const owner = tenantOfMailbox(directory, mailbox);
  if (!owner || owner.id === home.id) return undefined;
  return `${mailbox.toLowerCase()} is in tenant ${owner.domain}, and app ${app.name} is registered in ${home.domain}`;
}

/**
 * What the schema cannot see: a tenant declared twice, an app in a tenant
 * not declared, a grant across tenants. `path: problem` lines, as parse errors.
 */
export function directoryProblems(directory: SandboxDirectory): string[] {
  const problems: string[] = [];
  const tenants = tenantsOf(directory);
  tenants.forEach((tenant, i) => {
    const twice = tenants.findIndex((t) => t.id === tenant.id || t.domain === tenant.domain);
    if (twice !== i) problems.push(`otherTenants.${i - 1}: tenant ${tenant.domain} declared twice`);
  });
  directory.apps.forEach((app, i) => {
    if (app.tenant !== undefined && !tenants.some((t) => t.domain === app.tenant)) {
      problems.push(
        `apps.${i}.tenant: expected the domain of a declared tenant (${tenants.map((t) => t.domain).join(', ')})`,
      );
      return;
    }
    app.mailboxes.forEach((mailbox, j) => {
      const across = crossTenantGrant(directory, app, mailbox);
      if (across) problems.push(`apps.${i}.mailboxes.${j}: ${across}`);
    });
  });
  return problems;
}

export const SEEDED_DIRECTORY: SandboxDirectory = {
  tenant: { id: '7d3b5c1e-2f4a-4b6c-8d9e-0a1b2c3d4e5f', domain: 'contoso.test' },
  otherTenants: [{ id: '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b', domain: 'fabrikam.test' }],
  mailboxes: [
    { address: 'archive@contoso.test', folders: { INBOX: 3, 'Archive/2024': 2, 'Sent Items': 1 } },
    { address: 'alerts@contoso.test', folders: { INBOX: 2 } },
    { address: 'ceo@contoso.test', folders: { INBOX: 1, Projects: 2 } },
    { address: 'archive@fabrikam.test', folders: { INBOX: 2 } },
  ],
  apps: [
    {
      name: 'archiver',
      clientId: '11111111-1111-4111-8111-111111111111',
      credential: 'secret',
      roles: [IMAP_ROLE, SMTP_ROLE, POP_ROLE],
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
    {
      name: 'fabrikam-archiver',
      clientId: '55555555-5555-4555-8555-555555555555',
      credential: 'secret',
      roles: [IMAP_ROLE, SMTP_ROLE, POP_ROLE],
      mailboxes: ['archive@fabrikam.test'],
      tenant: 'fabrikam.test',
    },
  ],
};

/** A directory from JSON text (`--directory FILE`); `source` names the file in the error. */
export function parseDirectory(text: string, source: string): SandboxDirectory {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw directoryError(source, [displayText((error as Error).message, 200)]);
  }
  const result = v.safeParse(DirectorySchema, json);
  if (!result.success) {
    // Paths and expectations only: never the values, which may hold anything.
    throw directoryError(
      source,
      result.issues.map((issue) => `${v.getDotPath(issue) ?? '(top)'}: expected ${issue.expected}`),
    );
  }
  checkDirectory(result.output, source);
  return result.output;
}

/** Throws SANDBOX_DIRECTORY_INVALID for the problems `directoryProblems` finds. */
export function checkDirectory(directory: SandboxDirectory, source: string): void {
  const problems = directoryProblems(directory);
  if (problems.length > 0) throw directoryError(source, problems);
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
      'Give a JSON object with tenant {id, domain}, optional otherTenants [{id, domain}], mailboxes [{address, folders}] and apps [{name, clientId, credential, roles, mailboxes, tenant?}], as `mailbridge sandbox start --help` shows.',
  });
}
