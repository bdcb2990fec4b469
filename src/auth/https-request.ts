/**
 * One HTTPS request to the authority, directly or through an HTTP proxy's
 * CONNECT tunnel, with the answer's size bounded. Built on node:https rather
 * than fetch: Node 20's fetch takes neither a CA list nor a proxy without the
 * separately installed undici, and its body cannot be cut off while it streams.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext, connect as tlsConnect } from 'node:tls';
import type { ProxySettings } from '../config/types.js';
import { proxyFor } from '../util/proxy.js';
import { sniName, trustOptions } from '../util/tls.js';

export interface HttpsAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface HttpsRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

/** The answer was longer than any answer of a token service can be. */
export class ResponseTooLargeError extends Error {
  override name = 'ResponseTooLargeError';
  constructor(readonly limit: number) {
    super(`the answer is longer than ${limit} bytes`);
  }
}

/** The proxy could not be reached, or refused to open the tunnel. */
export class ProxyFailureError extends Error {
  override name = 'ProxyFailureError';
  constructor(
    /** `http://host:port`, never with credentials. */
    readonly proxy: string,
    readonly variable: string,
    readonly status: number | undefined,
    cause?: Error,
  ) {
    super(
      status === undefined
        ? `proxy ${proxy} unreachable`
        : `proxy ${proxy} answered HTTP ${status} to CONNECT`,
      cause ? { cause } : undefined,
    );
  }
}

export interface HttpsClientOptions {
  /** PEM certificates trusted besides Node's default ones. */
  extraCaCertificates?: readonly string[];
  proxy?: ProxySettings;
  /** Longest answer accepted, in bytes. */
  maxResponseBytes: number;
  /**
   * Also send `http:` URLs, directly (never through the proxy). Only for a
   * managed identity's endpoint, which the platform serves on the host itself
   * (App Service's 127.0.0.1, IMDS's link-local 169.254.169.254) without TLS.
   */
  plainHttp?: boolean;
}

export type HttpsSender = (request: HttpsRequest) => Promise<HttpsAnswer>;

/** A sender with its own keep-alive pool and trust, shared by the requests of one token provider. */
export function createHttpsSender(options: HttpsClientOptions): HttpsSender {
  const trust = trustOptions(options.extraCaCertificates);
  // One context for every connection: building one from ~150 CA certificates costs milliseconds.
  const secureContext: SecureContext | undefined = trust.ca
    ? createSecureContext({ ca: trust.ca })
    : undefined;
  const agent = new Agent({ keepAlive: true, ...(secureContext ? { secureContext } : {}) });
  const plainAgent = options.plainHttp ? new HttpAgent({ keepAlive: true }) : undefined;
  const limit = options.maxResponseBytes;

  return async (request) => {
    const url = new URL(request.url);
    const deadline = AbortSignal.timeout(request.timeoutMs);
    if (url.protocol === 'http:') {
      if (!plainAgent) throw new Error(`refused to send a request over plain http to ${url.host}`);
      return exchange(httpRequest, url, request, deadline, { agent: plainAgent }, limit);
    }
    const proxy = options.proxy ? proxyFor(url, options.proxy) : undefined;
    const socket = proxy ? await openTunnel(url, proxy, deadline) : undefined;
    const connection = socket
      ? {
          createConnection: () =>
            tlsConnect({
              socket,
              host: url.hostname,
              ...(sniName(url.hostname) ? { servername: url.hostname } : {}),
              ...(secureContext ? { secureContext } : {}),
            }),
        }
      : { agent };
    return exchange(httpsRequest, url, request, deadline, connection, limit, socket);
  };
}

/** Sends one request and reads its answer, up to `limit` bytes. */
function exchange(
  send: typeof httpsRequest | typeof httpRequest,
  url: URL,
  request: HttpsRequest,
  signal: AbortSignal,
  connection: Pick<RequestOptions, 'agent' | 'createConnection'>,
  limit: number,
  socket?: Socket,
): Promise<HttpsAnswer> {
  return new Promise<HttpsAnswer>((resolve, reject) => {
    const req = send(url, {
      method: request.method,
      headers: {
        ...request.headers,
        ...(request.body !== undefined
          ? { 'content-length': String(Buffer.byteLength(request.body)) }
          : {}),
      },
      signal,
      ...connection,
    });
    // The first outcome wins: destroying an over-long answer makes the request emit an error too.
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      req.destroy();
      socket?.destroy();
      reject(error);
    };
    req.once('error', fail);
    req.once('response', (response) => {
      readBounded(response, limit, fail, (text) => {
        if (settled) return;
        settled = true;
        resolve({ status: response.statusCode ?? 0, headers: flat(response), text });
      });
    });
    req.end(request.body);
  });
}

function readBounded(
  response: IncomingMessage,
  limit: number,
  fail: (error: Error) => void,
  done: (text: string) => void,
): void {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    fail(new ResponseTooLargeError(limit));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  response.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) {
      fail(new ResponseTooLargeError(limit));
      return;
    }
    chunks.push(chunk);
  });
  response.once('end', () => done(Buffer.concat(chunks).toString('utf8')));
  response.once('error', fail);
  response.once('aborted', () =>
    fail(new Error('the connection closed in the middle of the answer')),
  );
}

function flat(response: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/** A CONNECT tunnel to the target's host and port (RFC 9110 §9.3.6). */
function openTunnel(
  target: URL,
  proxy: { url: URL; origin: string; variable: string },
  signal: AbortSignal,
): Promise<Socket> {
  const authority = `${target.hostname}:${target.port || 443}`;
  const credentials =
    proxy.url.username || proxy.url.password
      ? {
          'proxy-authorization': `Basic ${Buffer.from(
            `${decodeURIComponent(proxy.url.username)}:${decodeURIComponent(proxy.url.password)}`,
          ).toString('base64')}`,
        }
      : {};
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: proxy.url.hostname,
      port: proxy.url.port || 80,
      method: 'CONNECT',
      path: authority,
      headers: { host: authority, ...credentials },
      signal,
      agent: false,
    });
    req.once('connect', (response, socket) => {
      if (response.statusCode === 200) {
        resolve(socket);
        return;
      }
      socket.destroy();
      reject(new ProxyFailureError(proxy.origin, proxy.variable, response.statusCode));
    });
    req.once('response', (response) => {
      // A proxy that answers CONNECT with an ordinary response refuses the tunnel.
      response.resume();
      reject(new ProxyFailureError(proxy.origin, proxy.variable, response.statusCode));
    });
    req.once('error', (error) => {
      reject(new ProxyFailureError(proxy.origin, proxy.variable, undefined, error));
    });
    req.end();
  });
}
