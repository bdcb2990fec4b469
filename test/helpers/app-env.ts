/**
 * The environment a user would set for an app registered in the local token
 * service, pointed at local IMAP/SMTP endpoints: what tests and benches hand
 * to `loadConfig` or to the CLI.
 */
import type { TokenService } from './token-service.js';

interface Endpoint {
  host: string;
  port: number;
}

export function appEnvironment(
  service: Pick<TokenService, 'url'>,
  app: { tenantId: string; clientId: string; secret: string | undefined },
  endpoints: { imap?: Endpoint; smtp?: Endpoint } = {},
): Record<string, string> {
  return {
    AZURE_TENANT_ID: app.tenantId,
    AZURE_CLIENT_ID: app.clientId,
    AZURE_CLIENT_SECRET: app.secret ?? '',
    AZURE_AUTHORITY_HOST: service.url,
    ...(endpoints.imap
      ? {
          MAILBRIDGE_IMAP_HOST: endpoints.imap.host,
          MAILBRIDGE_IMAP_PORT: String(endpoints.imap.port),
        }
      : {}),
    ...(endpoints.smtp
      ? {
          MAILBRIDGE_SMTP_HOST: endpoints.smtp.host,
          MAILBRIDGE_SMTP_PORT: String(endpoints.smtp.port),
        }
      : {}),
  };
}
