/**
 * Tokens of the host's Azure managed identity through msal-node's
 * `ManagedIdentityApplication`: no secret, no certificate. msal-node picks the
 * identity endpoint from the environment the platform sets (App Service and
 * Functions: IDENTITY_ENDPOINT + IDENTITY_HEADER; Azure Arc: IDENTITY_ENDPOINT
 * + IMDS_ENDPOINT; Cloud Shell: MSI_ENDPOINT; otherwise IMDS at
 * 169.254.169.254, as on VMs and Container Apps) and reads it from
 * `process.env` itself, once per process.
 */
import { ManagedIdentityApplication, type ManagedIdentitySourceNames } from '@azure/msal-node';
import type { MailbridgeConfig, ManagedIdentityCredential } from '../config/types.js';
import { AuthenticationError, MailbridgeError, NetworkError } from '../errors.js';
import { displayText } from '../util/display-text.js';
import { networkErrorCode } from '../util/network-errors.js';
import {
  type IssuedToken,
  msalLoggerOptions,
  requestToken,
  type TokenRequestOptions,
} from './msal-request.js';
import {
  describeUrl,
  MAX_RESPONSE_BYTES,
  RetryingNetworkClient,
  type WireFailure,
} from './network-client.js';

type SourceName = (typeof ManagedIdentitySourceNames)[keyof typeof ManagedIdentitySourceNames];

/** Where the token comes from, in the words of the platform's settings. */
const SOURCES: Record<string, { name: string; variables: string }> = {
  AppService: { name: 'App Service', variables: 'IDENTITY_ENDPOINT and IDENTITY_HEADER' },
  ServiceFabric: {
    name: 'Service Fabric',
    variables: 'IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT',
  },
  AzureArc: { name: 'Azure Arc', variables: 'IDENTITY_ENDPOINT and IMDS_ENDPOINT' },
  CloudShell: { name: 'Cloud Shell', variables: 'MSI_ENDPOINT' },
  MachineLearning: { name: 'Azure Machine Learning', variables: 'MSI_ENDPOINT and MSI_SECRET' },
  Imds: { name: 'IMDS (Azure VM)', variables: 'none: the instance metadata service' },
  DefaultToImds: { name: 'IMDS (Azure VM)', variables: 'none: the instance metadata service' },
};

/**
 * msal-node keeps the identity endpoint, and the network client it was
 * created with, in a static field: every `ManagedIdentityApplication` of the
 * process uses the first one's. So does this module: one network client per
 * process, whose `lastFailure` explains a failed request.
 */
let sharedNetwork: RetryingNetworkClient | undefined;

/** The identity endpoint msal-node will use, for messages and `doctor`. */
export function managedIdentitySource(): { name: string; variables: string } {
  const source: SourceName = new ManagedIdentityApplication().getManagedIdentitySource();
  return SOURCES[source] ?? { name: source, variables: 'unknown' };
}

/** One token request to the identity endpoint; throws our errors. */
export function managedIdentityTokenRequest(
  config: MailbridgeConfig,
  credential: ManagedIdentityCredential,
  options: TokenRequestOptions,
): () => Promise<IssuedToken> {
  const { logger } = options;
  sharedNetwork ??= new RetryingNetworkClient({
    retry: options.retry,
    timeoutMs: options.timeoutMs,
    logger,
    plainHttp: true,
  });
  const network = sharedNetwork;
  const msal = new ManagedIdentityApplication({
    ...(credential.userAssignedClientId
      ? { managedIdentityIdParams: { userAssignedClientId: credential.userAssignedClientId } }
      : {}),
    system: {
      networkClient: network,
      // Retries happen in our network client, where they really reach the endpoint.
      disableInternalRetries: true,
      loggerOptions: msalLoggerOptions(logger),
    },
  });
  return () =>
    requestToken(
      network,
      // Our cache decides when to refresh, so msal-node's is always bypassed.
      () => msal.acquireToken({ resource: config.scope, forceRefresh: true }),
      (error, failure) => managedIdentityError(error, failure, credential),
      () => answerInvalid(managedIdentitySource(), undefined, 'no access token or expiry'),
    );
}

function managedIdentityError(
  error: unknown,
  failure: WireFailure | undefined,
  credential: ManagedIdentityCredential,
): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const source = managedIdentitySource();
  const endpoint = failure ? `${describeUrl(failure.url)} (${source.name})` : source.name;
  if (failure?.kind === 'network') {
    const code = networkErrorCode(failure.error);
    return new NetworkError({
      code: 'MANAGED_IDENTITY_UNREACHABLE',
      message: `The managed identity endpoint ${endpoint} could not be reached (${code}, ${attempts(failure.attempts)})`,
      remedy: unreachableRemedy(source),
      cause: failure.error,
    });
  }
  if (failure?.kind === 'exhausted') {
    return new NetworkError({
      code: 'MANAGED_IDENTITY_UNREACHABLE',
      message: `The managed identity endpoint ${endpoint} kept failing (HTTP ${failure.status}, ${attempts(failure.attempts)})${reason(failure.body)}`,
      remedy: "The platform's identity service is not working: try again later.",
    });
  }
  if (failure?.kind === 'response') {
    const identity = credential.userAssignedClientId
      ? `the user-assigned identity ${credential.userAssignedClientId}`
      : 'the system-assigned identity';
    const header = failure.status === 401 || failure.status === 403;
    return new AuthenticationError({
      code: 'MANAGED_IDENTITY_REFUSED',
      message: `The managed identity endpoint ${endpoint} refused a token for ${identity} (HTTP ${failure.status})${reason(failure.body)}`,
      remedy: header
        ? `The endpoint did not accept the request's secret: ${source.variables} must be those the platform set for this process; do not copy them from elsewhere.`
        : credential.userAssignedClientId
          ? "Assign that identity to this resource (its Identity settings), or check AZURE_CLIENT_ID: it must be the identity's Client ID. Unset it to use the system-assigned identity."
          : 'Switch on the system-assigned identity of this resource (its Identity settings), or set AZURE_CLIENT_ID to the Client ID of a user-assigned identity assigned to it.',
    });
  }
  if (failure?.kind === 'not_json' || failure?.kind === 'too_large') {
    const excerpt =
      failure.kind === 'not_json' ? displayText(failure.text.replace(/\s+/g, ' ').trim(), 120) : '';
    return answerInvalid(
      source,
      endpoint,
      failure.kind === 'not_json'
        ? `HTTP ${failure.status}, not JSON${excerpt ? `: "${excerpt}"` : ''}`
        : `longer than ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB`,
    );
  }
  // msal-node refused before any request: a malformed endpoint variable, an answer it cannot read.
  const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return new AuthenticationError({
    code: 'TOKEN_REQUEST_FAILED',
    message: `The managed identity token request could not be made (${source.name}): ${displayText(detail ?? '', 200)}`,
    remedy: `Check ${source.variables} (run with --debug for details).`,
    cause: error,
  });
}

function answerInvalid(
  source: { name: string; variables: string },
  endpoint: string | undefined,
  problem: string,
): NetworkError {
  return new NetworkError({
    code: 'MANAGED_IDENTITY_ANSWER_INVALID',
    message: `The managed identity endpoint${endpoint ? ` ${endpoint}` : ''} answered without a usable token (${problem})`,
    remedy: isImds(source)
      ? "Something other than Azure's instance metadata service answers at 169.254.169.254 and no identity endpoint variable is set: this is not an Azure VM or container with a managed identity. Run there, or configure a certificate instead of MAILBRIDGE_CREDENTIAL=managed-identity."
      : `Something else answers at the identity endpoint: check ${source.variables}.`,
  });
}

function isImds(source: { name: string }): boolean {
  return source.name.startsWith('IMDS');
}

function unreachableRemedy(source: { name: string; variables: string }): string {
  return isImds(source)
    ? 'No identity endpoint variable is set and the instance metadata service (169.254.169.254) did not answer: this is not an Azure VM or container with a managed identity. Run there, or configure a certificate instead of MAILBRIDGE_CREDENTIAL=managed-identity.'
    : `Check that the managed identity of this ${source.name} resource is switched on and that ${source.variables} are those the platform set.`;
}

/** The endpoint's own explanation (App Service's `message`, IMDS's `error_description`). */
function reason(body: unknown): string {
  if (typeof body !== 'object' || body === null) return '';
  const fields = body as Record<string, unknown>;
  const nested = fields.error as Record<string, unknown> | undefined;
  const text = [fields.message, fields.error_description, nested?.message, fields.error].find(
    (value): value is string => typeof value === 'string' && value.trim() !== '',
  );
  return text ? `: "${displayText(text.replace(/\s+/g, ' ').trim(), 200)}"` : '';
}

function attempts(count: number): string {
  return `${count} attempt${count === 1 ? '' : 's'}`;
}
