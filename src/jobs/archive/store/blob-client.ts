/**
 * The container client for a blob location, with credentials from the
 * environment only (never argv): AZURE_STORAGE_CONNECTION_STRING (an account
 * key or a SAS, and `BlobEndpoint=` for another endpoint such as Azurite),
 * else Entra through DefaultAzureCredential (environment, workload identity,
 * managed identity, Azure CLI). @azure/identity is imported only then.
 */
import {
  BlobServiceClient,
  type ContainerClient,
  RestError,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import {
  AuthenticationError,
  ConfigurationError,
  MailbridgeError,
  NetworkError,
} from '../../../errors.js';
import { asciiText, displayText } from '../../../util/display-text.js';
import { type BlobLocation, isLoopback } from './blob-location.js';

export const CONNECTION_STRING_ENV = 'AZURE_STORAGE_CONNECTION_STRING';

/**
 * A few quick retries: the SDK's defaults (4 tries, up to 120 s apart) would
 * hold an unreachable endpoint's error back for minutes.
 */
const PIPELINE: StoragePipelineOptions = {
  retryOptions: {
    maxTries: 4,
    retryDelayInMs: 500,
    maxRetryDelayInMs: 8_000,
    tryTimeoutInMs: 120_000,
  },
};

export async function containerClient(
  location: BlobLocation,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ContainerClient> {
  const connectionString = env[CONNECTION_STRING_ENV]?.trim();
  let service: BlobServiceClient;
  if (connectionString) {
    try {
      service = BlobServiceClient.fromConnectionString(connectionString, PIPELINE);
    } catch {
      // The SDK's message may quote the string, key included.
      throw credentialsInvalid(`${CONNECTION_STRING_ENV} is not a storage connection string`);
    }
    const endpoint = new URL(service.url);
    if (endpoint.protocol === 'http:' && !isLoopback(endpoint.hostname)) {
      throw credentialsInvalid(
        `${CONNECTION_STRING_ENV} names a plain http endpoint (${displayText(endpoint.host)}); only a loopback one (Azurite) may be`,
      );
    }
    if (service.accountName !== location.account) {
      throw credentialsInvalid(
        `${CONNECTION_STRING_ENV} is for the account '${displayText(service.accountName)}', --out names '${location.account}'`,
      );
    }
    if (location.endpoint && !sameEndpoint(location.endpoint, service.url)) {
      throw credentialsInvalid(
        `${CONNECTION_STRING_ENV} is for the endpoint ${displayText(endpoint.origin)}, --out names ${displayText(location.endpoint)}`,
      );
    }
  } else {
    const { DefaultAzureCredential } = await import('@azure/identity');
    const endpoint = location.endpoint ?? `https://${location.account}.blob.core.windows.net`;
    service = new BlobServiceClient(endpoint, new DefaultAzureCredential(), PIPELINE);
  }
  return service.getContainerClient(location.container);
}

function sameEndpoint(a: string, b: string): boolean {
  const trim = (url: string) => url.replace(/\/+$/, '').toLowerCase();
  return trim(a) === trim(b);
}

function credentialsInvalid(message: string): ConfigurationError {
  return new ConfigurationError({
    code: 'ARCHIVE_STORE_CREDENTIALS_INVALID',
    message,
    remedy: `Set ${CONNECTION_STRING_ENV} to the storage account's connection string (Access keys, or a SAS connection string) for the account and endpoint --out names, or unset it to sign in with Entra (DefaultAzureCredential).`,
  });
}

/** Identity's failures, by name: the classes live in @azure/identity, which may not be loaded. */
const IDENTITY_ERRORS = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
]);

/**
 * A blob service failure as one of ours. Only the status, the service's
 * error code and (for network failures) the system's message are shown: the
 * SDK's messages can carry request URLs, and with them a SAS.
 */
export function blobStoreError(error: unknown, doing: string, where: string): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const name = (error as Error)?.name ?? '';
  if (IDENTITY_ERRORS.has(name)) {
    return new AuthenticationError({
      code: 'ARCHIVE_STORE_AUTH_FAILED',
      message: `No Entra token for Azure Storage to ${doing} ${where}: ${name}`,
      remedy: `Set ${CONNECTION_STRING_ENV}, or give this machine an identity DefaultAzureCredential finds (AZURE_CLIENT_ID/AZURE_TENANT_ID with a secret or certificate, workload or managed identity, \`az login\`) with the Storage Blob Data Contributor role on the container.`,
      cause: error,
    });
  }
  if (error instanceof RestError) {
    const status = error.statusCode;
    const code = asciiText(
      String(error.code ?? (error.details as { errorCode?: string })?.errorCode ?? ''),
    );
    if (status === undefined) {
      return new NetworkError({
        code: 'ARCHIVE_STORE_UNREACHABLE',
        message: `Could not reach the blob service to ${doing} ${where}: ${shown(error.message)}`,
        remedy:
          'Check the endpoint (the URL or the connection string), DNS, the firewall and, for https, that the certificate is trusted; then run again: it continues where it stopped.',
        cause: error,
      });
    }
    if (status === 401 || status === 403) {
      return new AuthenticationError({
        code: 'ARCHIVE_STORE_AUTH_FAILED',
        message: `The blob service refused to ${doing} ${where} (HTTP ${status}${code ? ` ${code}` : ''})`,
        remedy: `Check the key or SAS in ${CONNECTION_STRING_ENV} (a SAS needs read, add, create, write and list on the container, and must not have expired), or the Entra identity's role (Storage Blob Data Contributor).`,
        cause: error,
      });
    }
    if (status === 404 && /ContainerNotFound/i.test(code)) {
      return new ConfigurationError({
        code: 'ARCHIVE_STORE_NOT_FOUND',
        message: `The container of ${where} does not exist`,
        remedy:
          'Create the container first (the archive does not create containers), or fix the name in --out.',
        cause: error,
      });
    }
    return new MailbridgeError({
      code: 'ARCHIVE_STORE_FAILED',
      message: `The blob service failed to ${doing} ${where} (HTTP ${status}${code ? ` ${code}` : ''})`,
      remedy:
        'Run again: the archive continues where it stopped. If it keeps failing, run with --debug and check the storage account.',
      cause: error,
    });
  }
  return new MailbridgeError({
    code: 'ARCHIVE_STORE_FAILED',
    message: `Could not ${doing} ${where}: ${shown((error as Error)?.message ?? String(error))}`,
    remedy:
      'Run again: the archive continues where it stopped. If it keeps failing, run with --debug.',
    cause: error,
  });
}

/** A message from below, for people: ASCII, short, and no URL query (a SAS) in it. */
function shown(message: string): string {
  return asciiText(message.replace(/\?\S*/g, '?…'), 200);
}
