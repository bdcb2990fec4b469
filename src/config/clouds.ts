/**
 * The national clouds Exchange Online runs in. One name sets the authority
 * host, the Exchange resource (scope) and the IMAP/SMTP hosts together, because
 * mixing them (a US Government token against the global IMAP host) fails with
 * an unhelpful `AUTHENTICATE failed`.
 */
export const CLOUD_NAMES = ['global', 'usgov-high', 'usgov-dod', 'china'] as const;
export type CloudName = (typeof CLOUD_NAMES)[number];

export interface CloudProfile {
  authorityHost: string;
  scope: string;
  imapHost: string;
  smtpHost: string;
  /** `Connect-ExchangeOnline -ExchangeEnvironmentName` value. */
  exchangeEnvironmentName: string;
  /** Microsoft Graph resource of the same cloud, refused as a scope. */
  graphResource: string;
}

export const CLOUDS: Record<CloudName, CloudProfile> = {
  global: {
    authorityHost: 'https://login.microsoftonline.com',
    scope: 'https://outlook.office365.com/.default',
    imapHost: 'outlook.office365.com',
    smtpHost: 'smtp.office365.com',
    exchangeEnvironmentName: 'O365Default',
    graphResource: 'https://graph.microsoft.com',
  },
  'usgov-high': {
    authorityHost: 'https://login.microsoftonline.us',
    scope: 'https://outlook.office365.us/.default',
    imapHost: 'outlook.office365.us',
    smtpHost: 'smtp.office365.us',
    exchangeEnvironmentName: 'O365USGovGCCHigh',
    graphResource: 'https://graph.microsoft.us',
  },
  'usgov-dod': {
    authorityHost: 'https://login.microsoftonline.us',
    scope: 'https://outlook-dod.office365.us/.default',
    imapHost: 'outlook-dod.office365.us',
    smtpHost: 'smtp-dod.office365.us',
    exchangeEnvironmentName: 'O365USGovDoD',
    graphResource: 'https://dod-graph.microsoft.us',
  },
  china: {
    authorityHost: 'https://login.partner.microsoftonline.cn',
    scope: 'https://partner.outlook.cn/.default',
    imapHost: 'partner.outlook.cn',
    smtpHost: 'smtp.partner.outlook.cn',
    exchangeEnvironmentName: 'O365China',
    graphResource: 'https://microsoftgraph.chinacloudapi.cn',
  },
};

/** Every Graph resource, whatever the cloud: a Graph token never works for IMAP/SMTP. */
export const GRAPH_RESOURCES: readonly string[] = [
  ...new Set(Object.values(CLOUDS).map((c) => c.graphResource)),
  'https://graph.windows.net',
  '00000003-0000-0000-c000-000000000000',
];

/** Hosts msal-node knows without instance discovery. */
export const BUILT_IN_AUTHORITY_HOSTS: readonly string[] = [
  ...new Set(Object.values(CLOUDS).map((c) => new URL(c.authorityHost).host)),
];

export const DEFAULT_IMAP_PORT = 993;
export const DEFAULT_SMTP_PORT = 587;
/** POP3 over implicit TLS; Exchange Online serves POP on the IMAP host. */
export const DEFAULT_POP_PORT = 995;
