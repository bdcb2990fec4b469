import type { CloudName } from '../../config/clouds.js';
import { ExitCode } from '../../errors.js';
import { buildAdminConsentUrl } from '../../setup/consent-url.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeLine } from '../output.js';

export const setupConsentUrlCommand: Command = {
  name: 'setup consent-url',
  summary: "print the admin-consent URL that grants the app's Exchange Online permissions",
  usage:
    'setup consent-url --tenant TENANT --client-id ID --redirect-uri URI [--state S] [--cloud NAME]',
  usesSettings: false,
  flags: [
    {
      name: 'tenant',
      type: 'string',
      value: 'TENANT',
      required: true,
      help: 'tenant id, verified domain, or organizations (multi-tenant app)',
    },
    {
      name: 'client-id',
      type: 'string',
      value: 'ID',
      required: true,
      help: 'application (client) id',
    },
    {
      name: 'redirect-uri',
      type: 'string',
      value: 'URI',
      required: true,
      help: 'a redirect URI registered on the app: https, or http://localhost',
    },
    { name: 'state', type: 'string', value: 'S', help: 'value returned to the redirect URI' },
    {
      name: 'cloud',
      type: 'string',
      value: 'NAME',
      help: 'global (default) | usgov-high | usgov-dod | china',
    },
  ],
  details: [
    "The URL is Microsoft identity platform's v2.0 admin-consent endpoint:",
    '  https://login.microsoftonline.com/{tenant}/v2.0/adminconsent?client_id=...',
    '    &scope=https://outlook.office365.com/.default&redirect_uri=...&state=...',
    'scope {resource}/.default asks for every Exchange Online application permission configured',
    'on the app registration. An administrator who may grant tenant-wide consent opens it, signs',
    'in and accepts; Entra ID then redirects to the redirect URI with admin_consent=True and the',
    'tenant, or with error and error_description. The redirect URI must match one registered on',
    'the app (Authentication > Web) exactly. For a multi-tenant app use --tenant organizations.',
  ].join('\n'),
  async run({ args, io }) {
    const required = (name: string, example: string): string => {
      const value = args.values[name];
      if (typeof value !== 'string' || value === '') {
        throw usageError(`--${name} is required`, `Give it, e.g. --${name} ${example}.`);
      }
      return value;
    };
    const tenant = required('tenant', 'contoso.onmicrosoft.com');
    const clientId = required('client-id', '00001111-aaaa-2222-bbbb-3333cccc4444');
    const redirectUri = required('redirect-uri', 'https://localhost/consent');
    const state = args.values.state;
    const cloud = args.values.cloud;
    const url = buildAdminConsentUrl({
      tenant,
      clientId,
      redirectUri,
      ...(typeof state === 'string' ? { state } : {}),
      ...(typeof cloud === 'string' ? { cloud: cloud as CloudName } : {}),
    });
    writeLine(io.stdout, url);
    return ExitCode.ok;
  },
};
