/**
 * Checks the proxy the environment names for the token requests. Its value
 * may hold credentials (`http://user:password@host:port`): no message quotes
 * it, only the variable's name and, once parsed, its host and port.
 */
import type { NetworkEnvironment } from './env.js';
import type { ProxySettings } from './types.js';

export type ProxyResult = { proxy?: ProxySettings } | { problem: string };

export function checkProxy(network: NetworkEnvironment): ProxyResult {
  if (!network.proxy) return {};
  const { variable, value } = network.proxy;
  // curl and undici take `host:port` without a scheme as an http proxy.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { problem: `${variable} is not a proxy URL; write it as http://host:port.` };
  }
  if (url.protocol !== 'http:') {
    return {
      problem: `${variable} names a ${url.protocol.replace(':', '')} proxy; mailbridge talks to proxies over http:// (the tunnel through it is TLS from end to end), so write it as http://${url.host}.`,
    };
  }
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search) {
    return { problem: `${variable} must be http://host:port, without a path or query.` };
  }
  return { proxy: { url: url.href, variable, noProxy: network.noProxy } };
}
