import { decodeAccessTokenClaims } from '../auth/claims.js';
import { credentialExpiresOn, credentialExpiryWarning } from '../auth/credential-expiry.js';
import { managedIdentitySource } from '../auth/managed-identity.js';
import {
  type AccessToken,
  createTokenProvider,
  type TokenProvider,
} from '../auth/token-provider.js';
import {
  type Diagnosis,
  diagnoseExchangeSideImapRefusal,
  diagnoseNotConnectedAfterLogin,
  diagnosisToError,
  type ExchangeSideContext,
} from '../clients/diagnostics.js';
import { connectImap } from '../clients/imap-client.js';
import { createSmtpTransport } from '../clients/smtp-transport.js';
import type { MailbridgeConfig } from '../config/types.js';
import { ExitCode, MailbridgeError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { checkClaims, checkMailboxAccess, checkSmtpStartTls, checkTlsGreeting } from './checks.js';

export type DoctorStepName =
  | 'configuration'
  | 'token'
  | 'token claims'
  | 'imap connect'
  | 'imap authenticate'
  | 'imap list and select'
  | 'smtp connect'
  | 'smtp auth'
  | 'smtp test message';

export interface DoctorStep {
  name: DoctorStepName;
  status: 'passed' | 'failed' | 'skipped';
  code?: string;
  detail?: string;
  fix?: string;
  /** Passed, but something needs attention soon (a credential about to expire, a grant wider than meant). */
  warning?: string;
}

export interface DoctorReport {
  ok: boolean;
  steps: DoctorStep[];
  /** The exit code the CLI uses: that of the first failure, else 0. */
  exitCode: number;
}

export interface DoctorOptions {
  mailbox: string;
  /** Check IMAP. When neither `imap` nor `smtp` is set, both are checked. */
  imap?: boolean;
  smtp?: boolean;
  /** Send one test message to this address after SMTP AUTH passes. */
  sendTestTo?: string;
  /**
   * SMTP is granted in Exchange over a management scope (RBAC for
   * Applications), not by the tenant-wide SMTP.SendAsApp permission: the token
   * need not carry that role, and must not.
   */
  scopedSmtp?: boolean;
  /** The time credential expiry is measured from. @default new Date() */
  now?: Date;
  tokenProvider?: TokenProvider;
  logger?: Logger;
  /** Called as each step finishes, for live output. */
  onStep?: (step: DoctorStep) => void;
}

/**
 * Runs each setup check in order and stops at the first failure, so the
 * report points at the one step to fix. Never throws for a failed check.
 */
export async function runDoctor(
  config: MailbridgeConfig,
  options: DoctorOptions,
): Promise<DoctorReport> {
  const logger = options.logger ?? silentLogger;
  const both = !options.imap && !options.smtp;
  const imap = both || options.imap === true;
  const smtp = both || options.smtp === true;
  const provider = options.tokenProvider ?? createTokenProvider(config, { logger });
  const steps: DoctorStep[] = [];
  let failed: MailbridgeError | undefined;
  let token: AccessToken | undefined;

  const step = async (
    name: DoctorStepName,
    check: () => Promise<string | { detail: string; warning?: string | undefined }>,
  ): Promise<void> => {
    let result: DoctorStep;
    if (failed) {
      result = { name, status: 'skipped' };
    } else {
      try {
        const outcome = await check();
        result =
          typeof outcome === 'string'
            ? { name, status: 'passed', detail: outcome }
            : {
                name,
                status: 'passed',
                detail: outcome.detail,
                ...(outcome.warning ? { warning: outcome.warning } : {}),
              };
      } catch (error) {
        failed = asMailbridgeError(error);
        result = {
          name,
          status: 'failed',
          code: failed.code,
          detail: withoutRemedy(failed),
          fix: failed.remedy,
        };
      }
    }
    steps.push(result);
    options.onStep?.(result);
  };

  await step('configuration', async () => {
    const ends = credentialExpiresOn(config.credential);
    const via =
      config.credential.kind === 'managed-identity' ? ` via ${managedIdentitySource().name}` : '';
    return {
      detail: `tenant ${config.tenantId}, app ${config.clientId}, ${config.credential.kind}${via}${ends ? ` valid until ${ends.toISOString()}` : ''}`,
      warning: credentialExpiryWarning(config.credential, options.now ?? new Date()),
    };
  });
  await step('token', async () => {
    token = await provider.getToken();
    return `expires ${token.expiresOn.toISOString()}`;
  });
  const protocols = [...(imap ? (['imap'] as const) : []), ...(smtp ? (['smtp'] as const) : [])];
  await step('token claims', async () =>
    checkClaims(requireToken(token), config, protocols, {
      scopedSmtp: options.scopedSmtp === true,
    }),
  );

  if (imap) {
    await step('imap connect', () =>
      checkTlsGreeting(config.imap, 'imap', config.extraCaCertificates),
    );
    let client: Awaited<ReturnType<typeof connectImap>> | undefined;
    await step('imap authenticate', async () => {
      const accessToken = requireToken(token);
      try {
        client = await connectImap(config, { mailbox: options.mailbox, logger }, accessToken);
      } catch (error) {
        throw exchangeSideRefusal(error, config, options.mailbox, accessToken);
      }
      return `logged in as ${options.mailbox} (XOAUTH2)`;
    });
    await step('imap list and select', async () => {
      if (!client) throw new Error('no IMAP connection');
      try {
        return await checkMailboxAccess(client, config, options.mailbox);
      } catch (error) {
        throw exchangeSideRefusal(error, config, options.mailbox, requireToken(token));
      }
    });
    await client?.logout().catch(() => client?.close());
  }

  if (smtp) {
    await step('smtp connect', () => checkSmtpStartTls(config, options.mailbox));
    const transport = createSmtpTransport(config, {
      from: options.mailbox,
      tokenProvider: provider,
      logger,
      pool: false,
    });
    try {
      await step('smtp auth', async () => {
        try {
          await transport.verify();
        } catch (error) {
          throw options.scopedSmtp ? scopedSmtpRefusal(error) : error;
        }
        return `authenticated as ${options.mailbox} (XOAUTH2)`;
      });
      if (options.sendTestTo) {
        const to = options.sendTestTo;
        await step('smtp test message', async () => {
          const info = await transport.sendMail({
            from: options.mailbox,
            to,
            subject: 'mailbridge doctor test message',
            text: `This message was sent by mailbridge doctor to check SMTP sending as ${options.mailbox}.`,
          });
          return `accepted, Message-ID ${info.messageId}`;
        });
      }
    } finally {
      transport.close();
    }
  }

  return { ok: !failed, steps, exitCode: failed ? failed.exitCode : ExitCode.ok };
}

/**
 * Exchange's answers that doctor knows more about than the table: each is
 * reached only after the claims step passed (the token side is ruled out),
 * and "not connected" only after the login itself passed on doctor's one
 * connection, so the advice leads with what is left, with the values filled in.
 */
const AFTER_CLAIMS: Partial<Record<string, (context: ExchangeSideContext) => Diagnosis>> = {
  IMAP_AUTH_FAILED: diagnoseExchangeSideImapRefusal,
  IMAP_NOT_CONNECTED: diagnoseNotConnectedAfterLogin,
};

function exchangeSideRefusal(
  error: unknown,
  config: MailbridgeConfig,
  mailbox: string,
  token: AccessToken,
): unknown {
  const claims = decodeAccessTokenClaims(token.accessToken);
  const diagnose = error instanceof MailbridgeError ? AFTER_CLAIMS[error.code] : undefined;
  if (!diagnose || !claims) return error;
  const diagnosis = diagnose({
    mailbox,
    tenantId: config.tenantId,
    clientId: config.clientId,
    cloud: config.cloud,
    claims,
  });
  return diagnosisToError(diagnosis, { mailbox, cause: error });
}

/**
 * An SMTP AUTH refusal with a scoped grant: the scope or its assignment may be
 * missing, or too new. Doctor cannot know when the assignment was made, so the
 * advice says how long Exchange takes.
 */
function scopedSmtpRefusal(error: unknown): unknown {
  if (!(error instanceof MailbridgeError) || error.exitCode !== ExitCode.auth) return error;
  const Class = error.constructor as new (
    options: ConstructorParameters<typeof MailbridgeError>[0],
  ) => MailbridgeError;
  return new Class({
    code: error.code,
    message: withoutRemedy(error),
    remedy: `With SMTP scoped in Exchange (RBAC for Applications): a role assignment or scope change takes 30 minutes to 2 hours to apply, so a refusal right after \`setup exchange --smtp-scope\` may only be early; otherwise check that the mailbox is in the scope (Test-ServicePrincipalAuthorization -Identity <service principal> -Resource <mailbox>, whose InScope must be True for 'Application SMTP.SendAsApp'). ${error.remedy}`,
    cause: error,
  });
}

/**
 * The error's message without the remedy that MailbridgeError appends to it:
 * doctor prints the remedy on its own `fix:` line, and once is enough.
 */
function withoutRemedy(error: MailbridgeError): string {
  const { message, remedy } = error;
  return remedy && message.endsWith(remedy) ? message.slice(0, -remedy.length).trimEnd() : message;
}

function requireToken(token: AccessToken | undefined): AccessToken {
  if (!token) throw new Error('no token');
  return token;
}

function asMailbridgeError(error: unknown): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  return new MailbridgeError({
    code: 'INTERNAL',
    message: error instanceof Error ? error.message : String(error),
    remedy: 'This is a bug; please report it with the output of --debug.',
    cause: error,
  });
}
