/**
 * Which proxy, if any, a request goes through: the `HTTPS_PROXY` family of
 * environment variables as curl and undici read them. `NO_PROXY` entries are
 * host names (a leading `.` or `*.` is allowed; each also covers its
 * subdomains), IP addresses, optionally with `:port`, or `*` for everything.
 */
/** The HTTP proxy for token requests, from HTTPS_PROXY / HTTP_PROXY and NO_PROXY. */
export interface ProxySettings {
  /** `http://[user:password@]host:port`: may hold credentials, so never printed whole. */
  url: string;
  /** The variable it came from (`HTTPS_PROXY`, `http_proxy`, …), for messages. */
  variable: string;
  /** NO_PROXY entries: hosts (and their subdomains), `host:port`, or `*`. */
  noProxy: string[];
}

export interface ChosenProxy {
  url: URL;
  /** `http://host:port`: the proxy named without its credentials, for messages. */
  origin: string;
  /** The variable it came from, for messages. */
  variable: string;
}

/** The proxy for `target`, or `undefined` when NO_PROXY exempts it or none is set. */
export function proxyFor(target: URL, proxy: ProxySettings): ChosenProxy | undefined {
  if (bypasses(target, proxy.noProxy)) return undefined;
  const url = new URL(proxy.url);
  return { url, origin: `${url.protocol}//${url.host}`, variable: proxy.variable };
}

function bypasses(target: URL, noProxy: readonly string[]): boolean {
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  return noProxy.some((raw) => {
    const entry = raw.trim().toLowerCase();
    if (entry === '*') return true;
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
    if (!m) return false;
    const name = (m[1] as string).replace(/^\[|\]$/g, '').replace(/^\*?\./, '');
    if (m[2] !== undefined && m[2] !== port) return false;
    return name !== '' && (host === name || host.endsWith(`.${name}`));
  });
}
