import type { ProxySettings } from '../util/proxy.js';
import type { CloudName } from './clouds.js';
import type { Secret } from './secret.js';

/**
 * Settings as a user writes them: the config file's keys, the camelCase form of
 * the environment variables, and the CLI flags all share this shape. Every
 * field is optional here; `loadConfig` merges the sources and validates once.
 */
export interface Settings {
  /** Directory (tenant) id or a verified domain. Never `common`/`organizations`/`consumers`. */
  tenantId?: string;
  /** Application (client) id of the app registration. */
  clientId?: string;
  /** Client secret value (not its id). */
  clientSecret?: string;
  /** PEM file holding the private key and certificate, or a PFX/P12 file. */
  certificatePath?: string;
  /** Password of an encrypted PEM key or of a PFX file. */
  certificatePassword?: string;
  /** Send the certificate chain (`x5c`), for subject-name/issuer authentication. @default false */
  sendCertificateChain?: boolean;
  /** File holding a federated JWT (workload identity); re-read when it changes. */
  federatedTokenFile?: string;
  /** Library only: returns a federated client assertion (a signed JWT). */
  clientAssertion?: () => string | Promise<string>;
  /**
   * Use the Azure managed identity of the machine or service: no secret and
   * no certificate. `clientId` then names a user-assigned identity; without
   * it the system-assigned one is used.
   */
  managedIdentity?: boolean;
  /** Override the cloud's authority host, e.g. `https://login.microsoftonline.us`. */
  authorityHost?: string;
  /** National cloud. @default 'global' */
  cloud?: CloudName;
  /** Token scope: one resource's `/.default`. @default the cloud's Exchange resource */
  scope?: string;
  imap?: { host?: string; port?: number };
  smtp?: { host?: string; port?: number };
  /** POP3 over implicit TLS, read by `mailbridge proxy` only. */
  pop?: { host?: string; port?: number };
  /**
   * PEM file of CA certificates to trust besides Node's default ones, for the
   * token requests and the IMAP and SMTP connections (a private CA, or a
   * TLS-inspecting proxy's). Unlike NODE_EXTRA_CA_CERTS it can be set in the
   * config file, and it adds to NODE_EXTRA_CA_CERTS instead of replacing it.
   */
  caFile?: string;
  /** Sections of later jobs (`relay`, `archive`, …), kept as given. */
  [section: string]: unknown;
}

export interface SecretCredential {
  kind: 'secret';
  clientSecret: Secret;
}

/** A certificate credential, already decrypted and checked. */
export interface CertificateCredential {
  kind: 'certificate';
  /** Path the certificate came from, for messages. */
  path: string;
  /** Unencrypted PKCS#8 PEM private key, as msal-node wants it. */
  privateKey: Secret;
  /** The leaf certificate, PEM. */
  certificatePem: string;
  /** Leaf first, then any intermediates, PEM. Sent as `x5c` when `sendCertificateChain`. */
  chainPem: string[];
  /** Hex SHA-256 thumbprint of the leaf's DER (for `x5t#S256`). */
  thumbprintSha256: string;
  /** Hex SHA-1 thumbprint, for comparison with the portal's "Thumbprint" column. */
  thumbprintSha1: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  keyBits: number;
  sendCertificateChain: boolean;
}

/** A federated assertion read from a file (re-read when it changes) or from a callback. */
export interface FederatedCredential {
  kind: 'federated';
  federatedTokenFile?: string;
  clientAssertion?: () => string | Promise<string>;
}

/**
 * The Azure managed identity of the host, reached through the identity
 * endpoint the platform announces in the environment (App Service's
 * IDENTITY_ENDPOINT, Azure Arc, Cloud Shell, Service Fabric, else IMDS).
 */
export interface ManagedIdentityCredential {
  kind: 'managed-identity';
  /** Client id of a user-assigned identity; absent for the system-assigned one. */
  userAssignedClientId?: string;
}

/**
 * `clientId` of a configuration with a system-assigned managed identity,
 * whose application id is known only from its tokens (the `appid` claim).
 */
export const SYSTEM_ASSIGNED_CLIENT_ID = 'system-assigned';

export type Credential =
  | SecretCredential
  | CertificateCredential
  | FederatedCredential
  | ManagedIdentityCredential;

export interface Endpoint {
  host: string;
  port: number;
}

export type { ProxySettings } from '../util/proxy.js';

/** A validated configuration, ready for `createTokenProvider` and the clients. */
export interface MailbridgeConfig {
  tenantId: string;
  /** The app registration's client id, a user-assigned managed identity's, or SYSTEM_ASSIGNED_CLIENT_ID. */
  clientId: string;
  credential: Credential;
  cloud: CloudName;
  /** `https://host[:port]`, no trailing slash. */
  authorityHost: string;
  /** `${authorityHost}/${tenantId}` */
  authority: string;
  /** True when the authority host is not one msal-node knows (sets `knownAuthorities`). */
  customAuthorityHost: boolean;
  scope: string;
  imap: Endpoint;
  smtp: Endpoint;
  /** Exchange Online's POP3 (implicit TLS), for `mailbridge proxy`. */
  pop: Endpoint;
  /** The caFile setting, resolved. */
  caFile?: string;
  /**
   * PEM certificates trusted besides Node's default ones: caFile's, and, as
   * Node 20 cannot add to its default store, NODE_EXTRA_CA_CERTS's again.
   * Absent without caFile, which leaves Node's default trust untouched.
   */
  extraCaCertificates?: string[];
  /** Proxy for the token requests, when the environment names one. */
  proxy?: ProxySettings;
  /** Problems that do not stop the tool, e.g. a certificate expiring soon. */
  warnings: string[];
  /** Job sections from the config file, unvalidated until a job reads them. */
  sections: Record<string, unknown>;
}
