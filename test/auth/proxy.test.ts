/**
 * Token requests through an HTTP proxy named by HTTPS_PROXY / HTTP_PROXY,
 * with NO_PROXY exemptions: a small CONNECT proxy on loopback counts the
 * tunnels it opens, so a test knows the request really went through it.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';
import { tokenError } from './token-error.js';

interface Tunnel {
  target: string;
  authorization: string | undefined;
}

let service: TokenService;
let proxy: Server;
let proxyUrl: string;
let tunnels: Tunnel[] = [];
/** Answer CONNECT with this status instead of opening the tunnel. */
let refuseWith: number | undefined;
let env: Record<string, string>;
/** Tunnelled sockets leave the HTTP server's books: closing them is ours. */
const open = new Set<Duplex>();

beforeAll(async () => {
  service = await startTokenService();
  proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client, head) => {
    tunnels.push({ target: req.url ?? '', authorization: req.headers['proxy-authorization'] });
    if (refuseWith !== undefined) {
      client.end(`HTTP/1.1 ${refuseWith} Refused\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    open.add(client);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host as string, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    open.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const app = service.registerApp();
  env = appEnvironment(service, app);
});

afterAll(async () => {
  for (const socket of open) socket.destroy();
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
  await service.close();
});

beforeEach(() => {
  tunnels = [];
  refuseWith = undefined;
  service.resetCounters();
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('HTTPS_PROXY', () => {
  it('sends the token requests through the proxy, TLS end to end', async () => {
    const { code, stderr } = await runCli(['token'], { ...env, HTTPS_PROXY: proxyUrl });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    // The OpenID metadata and the token request, each through a tunnel to the authority.
    expect(tunnels.length).toBeGreaterThanOrEqual(2);
    expect(new Set(tunnels.map((t) => t.target))).toEqual(new Set([service.host]));
    expect(service.tokenRequests).toBe(1);
  });

  it('reads https_proxy, and HTTP_PROXY when no https proxy is named', async () => {
    expect((await runCli(['token'], { ...env, https_proxy: proxyUrl })).code).toBe(0);
    const viaLower = tunnels.length;
    expect(viaLower).toBeGreaterThan(0);
    expect((await runCli(['token'], { ...env, HTTP_PROXY: proxyUrl })).code).toBe(0);
    expect(tunnels.length).toBeGreaterThan(viaLower);
  });

  it('sends the credentials in the URL as Proxy-Authorization and never prints them', async () => {
    const withCredentials = proxyUrl.replace('http://', 'http://relay%40corp:Pr0xy~Secret@');
    const { code, stdout, stderr } = await runCli(['token', '--debug'], {
      ...env,
      HTTPS_PROXY: withCredentials,
    });
    expect(code).toBe(0);
    expect(tunnels[0]?.authorization).toBe(
      `Basic ${Buffer.from('relay@corp:Pr0xy~Secret').toString('base64')}`,
    );
    expect(stdout + stderr).not.toContain('Pr0xy~Secret');
  });
});

describe('NO_PROXY', () => {
  it('goes directly to an exempted host', async () => {
    for (const noProxy of [
      '127.0.0.1',
      `127.0.0.1:${service.port}`,
      '*',
      'example.com,127.0.0.1',
    ]) {
      const before = service.tokenRequests;
      const { code } = await runCli(['token'], {
        ...env,
        HTTPS_PROXY: proxyUrl,
        NO_PROXY: noProxy,
      });
      expect(code, noProxy).toBe(0);
      expect(service.tokenRequests).toBe(before + 1);
    }
    expect(tunnels).toEqual([]);
  });

  it('keeps the proxy for other hosts and other ports', async () => {
    const { code } = await runCli(['token'], {
      ...env,
      HTTPS_PROXY: proxyUrl,
      no_proxy: `localhost,127.0.0.2,127.0.0.1:${service.port + 1}`,
    });
    expect(code).toBe(0);
    expect(tunnels.length).toBeGreaterThan(0);
  });
});

describe('a failing proxy', () => {
  it('an unreachable proxy is named as such, not the authority, without its credentials', async () => {
    const port = await closedPort();
    const error = await tokenError({
      ...env,
      HTTPS_PROXY: `http://ops:Hidden~Pw@127.0.0.1:${port}`,
    });
    expect(error.code).toBe('PROXY_UNREACHABLE');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain(
      `The proxy http://127.0.0.1:${port} (from HTTPS_PROXY) could not be reached (ECONNREFUSED, 2 attempts)`,
    );
    expect(error.message).not.toContain('authority');
    expect(JSON.stringify(error.toJSON())).not.toContain('Hidden~Pw');
    expect(service.tokenRequests).toBe(0);
  });

  it('a proxy that wants credentials says so, without retrying', async () => {
    refuseWith = 407;
    const error = await tokenError({ ...env, HTTPS_PROXY: proxyUrl });
    expect(error.code).toBe('PROXY_REFUSED');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('HTTP 407');
    expect(error.remedy).toContain('http://user:password@host:port');
    expect(tunnels).toHaveLength(1);
  });

  it('a proxy URL that cannot be used is a configuration problem that does not quote it', async () => {
    const { code, stderr } = await runCli(['token'], {
      ...env,
      HTTPS_PROXY: 'socks5://u:Sock~Secret@127.0.0.1:1080',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('HTTPS_PROXY names a socks5 proxy');
    expect(stderr).not.toContain('Sock~Secret');
  });
});
