import { readFile } from 'node:fs/promises';
import type { NodeAuthOptions } from '@azure/msal-node';
import type { Credential } from '../config/types.js';
import { AuthenticationError } from '../errors.js';

type MsalCredentialOptions = Pick<
  NodeAuthOptions,
  'clientSecret' | 'clientCertificate' | 'clientAssertion'
>;

/** A credential of an app registration, presented to Entra by msal-node's confidential client. */
export type ConfidentialCredential = Exclude<Credential, { kind: 'managed-identity' }>;

/** The part of msal-node's `auth` options that proves who the app is. */
export function msalCredentialOptions(credential: ConfidentialCredential): MsalCredentialOptions {
  switch (credential.kind) {
    case 'secret':
      return { clientSecret: credential.clientSecret.reveal() };
    case 'certificate':
      // thumbprintSha256 makes msal-node sign PS256 with x5t#S256; the SHA-1 form is deprecated.
      return {
        clientCertificate: {
          thumbprintSha256: credential.thumbprintSha256,
          privateKey: credential.privateKey.reveal(),
          ...(credential.sendCertificateChain ? { x5c: credential.chainPem.join('\n') } : {}),
        },
      };
    case 'federated':
      return { clientAssertion: federatedAssertion(credential) };
  }
}

/**
 * msal-node calls this on every token request. A token file is read each time
 * because Kubernetes rotates it in place (about hourly) and a stale assertion is
 * refused with AADSTS700024; the read only happens when a request goes out.
 */
function federatedAssertion(
  credential: Extract<Credential, { kind: 'federated' }>,
): () => Promise<string> {
  const { clientAssertion, federatedTokenFile } = credential;
  if (clientAssertion) return async () => String(await clientAssertion()).trim();
  const path = federatedTokenFile ?? '';
  return async () => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw new AuthenticationError({
        code: 'FEDERATED_TOKEN_UNREADABLE',
        message: `The federated token file ${path} could not be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
        remedy:
          'Check AZURE_FEDERATED_TOKEN_FILE and that the projected service account token is mounted.',
        cause,
      });
    }
    const assertion = text.trim();
    if (assertion.split('.').length !== 3) {
      throw new AuthenticationError({
        code: 'FEDERATED_TOKEN_INVALID',
        message: `The federated token file ${path} does not hold a JWT`,
        remedy: 'Point AZURE_FEDERATED_TOKEN_FILE at the token file your platform writes.',
      });
    }
    return assertion;
  };
}
