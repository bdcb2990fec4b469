/**
 * The app's own secrets and certificates with their end dates, as Microsoft
 * Graph lists them (`GET /v1.0/applications(appId='…')`): what `mailbridge
 * credentials check --graph` reports before a credential expires and mail
 * stops. Reading them needs the Graph application permission
 * Application.Read.All, or ownership of the app registration with
 * Application.ReadWrite.OwnedBy; without either Graph answers 403.
 */
import { createHttpsSender, type HttpsAnswer } from '../auth/https-request.js';
import { createTokenProvider, type TokenProvider } from '../auth/token-provider.js';
import { CLOUDS } from '../config/clouds.js';
import type { MailbridgeConfig } from '../config/types.js';
import { AuthenticationError, NetworkError, ProtocolError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { displayText } from '../util/display-text.js';
import {
  isTlsVerificationError,
  networkErrorCode,
  tlsUntrustedError,
} from '../util/network-errors.js';

export interface AppCredential {
  kind: 'secret' | 'certificate';
  /** The credential's display name in Entra ID, shown escaped. */
  name: string;
  keyId?: string;
  /** First characters of a secret, as Entra shows them. */
  hint?: string;
  /** SHA-1 thumbprint of a certificate, hex upper-case (the portal's "Thumbprint"). */
  thumbprint?: string;
  startsOn?: Date;
  endsOn: Date;
}

export interface ReadAppCredentialsOptions {
  /** Graph's base URL. @default the cloud's Graph endpoint */
  graphUrl?: string;
  /** A provider of Graph tokens. @default one made from `config` for `{graph}/.default` */
  tokenProvider?: TokenProvider;
  logger?: Logger;
  timeoutMs?: number;
}

const MAX_ANSWER_BYTES = 1024 * 1024;

/** The cloud's Graph endpoint, which is also its token resource. */
export function defaultGraphUrl(config: Pick<MailbridgeConfig, 'cloud'>): string {
  return CLOUDS[config.cloud].graphResource;
}

/**
 * @throws AuthenticationError `GRAPH_FORBIDDEN`; NetworkError `GRAPH_UNREACHABLE`
 *   or `TLS_CERTIFICATE_UNTRUSTED`; ProtocolError `GRAPH_ANSWER_INVALID`; the
 *   token provider's errors
 */
export async function readAppCredentials(
  config: MailbridgeConfig,
  options: ReadAppCredentialsOptions = {},
): Promise<AppCredential[]> {
  const graphUrl = (options.graphUrl ?? defaultGraphUrl(config)).replace(/\/+$/, '');
  const provider =
    options.tokenProvider ??
    createTokenProvider(
      { ...config, scope: `${CLOUDS[config.cloud].graphResource}/.default` },
      options.logger ? { logger: options.logger } : {},
    );
  const token = await provider.getToken();
  const url = `${graphUrl}/v1.0/applications(appId='${encodeURIComponent(config.clientId)}')?$select=passwordCredentials,keyCredentials`;
  const send = createHttpsSender({
    maxResponseBytes: MAX_ANSWER_BYTES,
    ...(config.extraCaCertificates ? { extraCaCertificates: config.extraCaCertificates } : {}),
    ...(config.proxy ? { proxy: config.proxy } : {}),
  });
  const where = new URL(graphUrl).host;
  let answer: HttpsAnswer;
  try {
    answer = await send({
      method: 'GET',
      url,
      headers: { authorization: `Bearer ${token.accessToken}`, accept: 'application/json' },
      timeoutMs: options.timeoutMs ?? 30_000,
    });
  } catch (error) {
    const cause = error instanceof Error ? error : new Error(String(error));
    if (isTlsVerificationError(cause))
      throw tlsUntrustedError(`Microsoft Graph at ${where}`, 'the server', cause);
    throw new NetworkError({
      code: 'GRAPH_UNREACHABLE',
      message: `Microsoft Graph at ${where} could not be reached (${networkErrorCode(cause)})`,
      remedy: 'Check the network, proxy and firewall, and the cloud or --graph-url.',
      cause,
    });
  }
  return parseAnswer(answer, config.clientId, where);
}

function parseAnswer(answer: HttpsAnswer, appId: string, where: string): AppCredential[] {
  const body = parseJson(answer.text);
  if (answer.status === 403 || answer.status === 401) {
    throw new AuthenticationError({
      code: 'GRAPH_FORBIDDEN',
      message: `Microsoft Graph refused to list the credentials of app ${appId} (HTTP ${answer.status}${graphErrorCode(body)})`,
      remedy:
        "Grant the app the Microsoft Graph application permission Application.Read.All and grant admin consent (or make its service principal an owner of the app registration and grant Application.ReadWrite.OwnedBy). Without it, see the end dates under the app registration's Certificates & secrets.",
    });
  }
  if (answer.status !== 200 || !isRecord(body)) {
    throw new ProtocolError({
      code: 'GRAPH_ANSWER_INVALID',
      message: `Microsoft Graph at ${where} answered HTTP ${answer.status}${graphErrorCode(body)} instead of the credentials of app ${appId}`,
      remedy:
        'Check the cloud (or --graph-url) and that clientId is the application (client) id of the app registration.',
    });
  }
  const secrets = listOf(body.passwordCredentials).map((item) =>
    credential('secret', item, { hint: text(item.hint, 8) }),
  );
  const certificates = listOf(body.keyCredentials).map((item) =>
    credential('certificate', item, { thumbprint: thumbprintOf(item.customKeyIdentifier) }),
  );
  return [...secrets, ...certificates].sort((a, b) => a.endsOn.getTime() - b.endsOn.getTime());
}

function credential(
  kind: AppCredential['kind'],
  item: Record<string, unknown>,
  extra: { hint?: string | undefined; thumbprint?: string | undefined },
): AppCredential {
  const endsOn = dateOf(item.endDateTime);
  if (!endsOn) {
    throw new ProtocolError({
      code: 'GRAPH_ANSWER_INVALID',
      message: `Microsoft Graph listed a ${kind} without a readable endDateTime`,
      remedy: 'Check the cloud (or --graph-url): the answer is not what Microsoft Graph sends.',
    });
  }
  const startsOn = dateOf(item.startDateTime);
  const keyId = text(item.keyId, 36);
  return {
    kind,
    name: text(item.displayName, 80) ?? '(no name)',
    ...(keyId ? { keyId } : {}),
    ...(extra.hint ? { hint: extra.hint } : {}),
    ...(extra.thumbprint ? { thumbprint: extra.thumbprint } : {}),
    ...(startsOn ? { startsOn } : {}),
    endsOn,
  };
}

/** Entra keeps a certificate's SHA-1 thumbprint, base64, as its customKeyIdentifier. */
function thumbprintOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const bytes = Buffer.from(value, 'base64');
  return bytes.length === 20 ? bytes.toString('hex').toUpperCase() : undefined;
}

function graphErrorCode(body: unknown): string {
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  return typeof error?.code === 'string' ? `, ${displayText(error.code, 60)}` : '';
}

function listOf(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function dateOf(value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function text(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value !== '' ? displayText(value, max) : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
