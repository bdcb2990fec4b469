/**
 * `--out` as a blob container: `azblob://ACCOUNT/CONTAINER/PREFIX`, the
 * service URL `https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX`, or a
 * path-style URL `https://HOST:PORT/ACCOUNT/CONTAINER/PREFIX` for another
 * endpoint (Azurite, an Azure Stack hub). Plain `http://` is accepted only
 * for a loopback host (Azurite on the same machine): anything else would
 * send data and signed requests unencrypted. No SDK here: the CLI checks the
 * URL before anything loads.
 */
import { ConfigurationError } from '../../../errors.js';
import { displayText } from '../../../util/display-text.js';

export interface BlobLocation {
  account: string;
  container: string;
  /** Blob name prefix: '' or ending in '/'. */
  prefix: string;
  /** The service endpoint the URL names, when it names one (not for `azblob://`). */
  endpoint?: string;
  /** The URL for people and results, `/`-terminated prefix left off. */
  display: string;
}

const ACCOUNT = /^[a-z0-9]{3,24}$/;
/** Container names: 3-63 lower-case letters, digits and single hyphens, not at either end. */
const CONTAINER = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;
/** The service host of every Azure cloud: ACCOUNT.blob.core.windows.net, .usgovcloudapi.net, … */
const SERVICE_HOST = /^([a-z0-9]{3,24})\.blob\./;
/** Blob names are at most 1,024 characters; the prefix leaves room for the archive's own. */
const MAX_PREFIX = 512;

/** Whether `--out` names a blob container rather than a directory. */
export function isBlobTarget(out: string): boolean {
  return /^(azblob|https?):\/\//i.test(out);
}

export function parseBlobLocation(text: string): BlobLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(text, 'it is not a URL');
  }
  if (url.username || url.password || url.search || url.hash) {
    // A SAS in the URL would sit in argv, shell history and logs.
    throw invalid(
      text,
      'it carries credentials or a query (a SAS?): put those in AZURE_STORAGE_CONNECTION_STRING instead',
    );
  }
  // The URL parser resolves `.` and `..` away: refused as written, not silently resolved.
  const written = text.replace(/^[a-z]+:\/\/[^/]*/i, '').split('/');
  if (written.some((s) => /^(\.|%2e){1,2}$/i.test(s))) {
    throw invalid(text, 'the path has a . or .. part');
  }
  const segments = url.pathname.split('/').slice(1);
  if (segments.at(-1) === '') segments.pop();
  let account: string;
  let endpoint: string | undefined;
  if (url.protocol === 'azblob:') {
    account = url.hostname;
    if (url.port)
      throw invalid(text, 'azblob:// takes no port; give the endpoint in the connection string');
  } else {
    if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
      throw invalid(text, 'plain http is accepted only for a loopback host (Azurite); use https');
    }
    const host = SERVICE_HOST.exec(url.hostname);
    if (host) {
      account = host[1] as string;
      endpoint = url.origin;
    } else {
      account = segments.shift() ?? '';
      endpoint = `${url.origin}/${account}`;
    }
  }
  const [container = '', ...rest] = segments.map(decodeSegment);
  if (!ACCOUNT.test(account)) {
    throw invalid(
      text,
      `'${displayText(account)}' is not a storage account name (3-24 lower-case letters and digits)`,
    );
  }
  if (!CONTAINER.test(container)) {
    throw invalid(
      text,
      `'${displayText(container)}' is not a container name (3-63 lower-case letters, digits and hyphens)`,
    );
  }
  if (rest.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) {
    throw invalid(text, 'the prefix has an empty, . or .. part');
  }
  const prefix = rest.length ? `${rest.join('/')}/` : '';
  if (prefix.length > MAX_PREFIX)
    throw invalid(text, `the prefix is longer than ${MAX_PREFIX} characters`);
  const display = `${url.protocol === 'azblob:' ? `azblob://${account}` : endpoint}/${container}${prefix ? `/${prefix.slice(0, -1)}` : ''}`;
  return { account, container, prefix, ...(endpoint ? { endpoint } : {}), display };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function invalid(text: string, why: string): ConfigurationError {
  return new ConfigurationError({
    code: 'ARCHIVE_STORE_URL_INVALID',
    message: `--out ${displayText(text.replace(/\?.*/s, '?…').replace(/\/\/[^/]*@/, '//…@'))} is not a blob container URL: ${why}`,
    remedy:
      'Give azblob://ACCOUNT/CONTAINER[/PREFIX] or https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX] (a path-style https://HOST:PORT/ACCOUNT/CONTAINER for Azurite), or a directory.',
  });
}
