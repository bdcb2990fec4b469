/**
 * A local stand-in for Azure App Service's managed identity endpoint (the
 * one announced by IDENTITY_ENDPOINT and IDENTITY_HEADER, API version
 * 2019-08-01): plain HTTP on loopback, as App Service serves it inside the
 * sandbox. Like the real one it holds the identities' credentials itself and
 * asks the token service (test/helpers/token-service.ts, standing in for
 * Entra ID) with the client-credentials grant, so its tokens are the token
 * service's own and Dovecot and Postfix accept them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RegisteredApp, TokenService } from './token-service.js';

export const API_VERSION = '2019-08-01';
export const SECRET_HEADER = 'x-identity-header';
const PATH = '/msi/token';

export interface IdentityEndpointOptions {
  tokenService: Pick<TokenService, 'tokenEndpoint'>;
  /** The resource's system-assigned identity: an app of the token service with a secret. */
  systemAssigned?: RegisteredApp;
  /** User-assigned identities assigned to the resource, picked by `client_id`. */
  userAssigned?: readonly RegisteredApp[];
}

export interface IdentityEndpointRequest {
  resource: string | null;
  clientId: string | null;
  status: number;
}

export interface IdentityEndpoint {
  /** `http://127.0.0.1:PORT/msi/token` */
  readonly url: string;
  /** The secret a caller must send in X-IDENTITY-HEADER. */
  readonly header: string;
  /** What a process on the resource sees: IDENTITY_ENDPOINT and IDENTITY_HEADER. */
  environment(): Record<'IDENTITY_ENDPOINT' | 'IDENTITY_HEADER', string>;
  readonly requests: readonly IdentityEndpointRequest[];
  /** The next requests get this HTTP status (500, 503: a platform hiccup) without a token. */
  failNext(count: number, status: number): void;
  close(): Promise<void>;
}

export async function startIdentityEndpoint(
  options: IdentityEndpointOptions,
): Promise<IdentityEndpoint> {
  const header = randomBytes(16).toString('hex');
  const requests: IdentityEndpointRequest[] = [];
  const faults: number[] = [];
  const server: Server = createServer((req, res) => {
    answer(req, options, header, faults).then(
      ({ status, body }) => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        requests.push({
          resource: url.searchParams.get('resource'),
          clientId: url.searchParams.get('client_id'),
          status,
        });
        send(res, status, body);
      },
      (error: unknown) => send(res, 500, { statusCode: 500, message: String(error) }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${PATH}`;
  return {
    url,
    header,
    environment: () => ({ IDENTITY_ENDPOINT: url, IDENTITY_HEADER: header }),
    requests,
    failNext(count, status) {
      for (let i = 0; i < count; i++) faults.push(status);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** App Service's checks, then a token from the token service for the chosen identity. */
async function answer(
  req: IncomingMessage,
  options: IdentityEndpointOptions,
  header: string,
  faults: number[],
): Promise<Answer> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const fault = faults.shift();
  if (fault !== undefined)
    return refusal(fault, 'The identity service is temporarily unavailable.');
  if (req.method !== 'GET' || url.pathname !== PATH) return refusal(404, 'Not found.');
  if (req.headers[SECRET_HEADER] !== header) {
    return refusal(401, 'The X-IDENTITY-HEADER header is missing or does not match.');
  }
  if (url.searchParams.get('api-version') !== API_VERSION) {
    return refusal(400, `api-version must be ${API_VERSION}.`);
  }
  const resource = url.searchParams.get('resource');
  if (!resource) return refusal(400, 'The resource parameter is missing.');
  const clientId = url.searchParams.get('client_id');
  const identity = clientId
    ? options.userAssigned?.find((app) => app.clientId === clientId)
    : options.systemAssigned;
  if (!identity) {
    return refusal(
      400,
      clientId
        ? 'No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.'
        : 'No managed identity is enabled for this resource.',
    );
  }
  const response = await fetch(options.tokenService.tokenEndpoint(identity.tenantId), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: identity.clientId,
      client_secret: identity.secret ?? '',
      scope: `${resource.replace(/\/+$/, '')}/.default`,
    }).toString(),
  });
  const token = (await response.json()) as Record<string, unknown>;
  if (!response.ok) {
    return refusal(400, `Entra refused: ${String(token.error_description ?? token.error)}`);
  }
  // App Service gives the end as Unix seconds in a string, not a lifetime.
  const expiresOn = Math.floor(Date.now() / 1000) + Number(token.expires_in);
  return {
    status: 200,
    body: {
      access_token: token.access_token,
      expires_on: String(expiresOn),
      resource,
      token_type: 'Bearer',
      client_id: identity.clientId,
    },
  };
}

function refusal(status: number, message: string): Answer {
  return { status, body: { statusCode: status, message, correlationId: randomUUID() } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
