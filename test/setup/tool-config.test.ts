/**
 * The --for snippets' refusals: what each tool's configuration syntax cannot
 * carry is refused rather than written in a form the tool would read
 * differently. (The snippets themselves run with the real tools in
 * test/cli/token-tools.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { TOOLS, type ToolConfigInput, toolConfig } from '../../src/setup/tool-config.js';

const input: ToolConfigInput = {
  mailbox: 'archive@contoso.com',
  imap: { host: 'outlook.office365.com', port: 993 },
  smtp: { host: 'smtp.office365.com', port: 587 },
  tokenCommand: ['/usr/bin/node', '/opt/mailbridge/dist/cli/main.js', 'token', '--show-token'],
};

describe('toolConfig', () => {
  it('refuses a line break in any value, for every tool', () => {
    for (const tool of TOOLS) {
      expect(() => toolConfig(tool, { ...input, caFile: '/etc/ca.pem\nPassCmd evil' })).toThrow(
        expect.objectContaining({ code: 'SETUP_UNSAFE_VALUE' }),
      );
      expect(() =>
        toolConfig(tool, { ...input, tokenCommand: [...input.tokenCommand, 'a\rb'] }),
      ).toThrow(expect.objectContaining({ code: 'SETUP_UNSAFE_VALUE' }));
    }
  });

  it('refuses for msmtp a value its parser would trim or unquote', () => {
    expect(() => toolConfig('msmtp', { ...input, caFile: '/etc/ca.pem ' })).toThrow(
      /starts or ends with a blank or a double quote/,
    );
    expect(() => toolConfig('msmtp', { ...input, caFile: '"/etc/ca.pem"' })).toThrow(
      /msmtp's configuration would drop/,
    );
  });

  it('doubles % for offlineimap only', () => {
    const withPercent = { ...input, caFile: '/etc/100%/ca.pem' };
    expect(toolConfig('offlineimap', withPercent)).toContain('sslcacertfile = /etc/100%%/ca.pem');
    expect(toolConfig('getmail', withPercent)).toContain('ca_certs = /etc/100%/ca.pem');
  });

  it('checks certificates in getmail with the system bundle when no caFile is set', () => {
    expect(toolConfig('getmail', input)).toContain('ca_certs = /etc/ssl/certs/ca-certificates.crt');
    expect(toolConfig('offlineimap', input)).toContain('sslcacertfile = OS-DEFAULT');
  });
});
