import { describe, expect, it } from 'vitest';
import { buildOAuthBearer, buildXOAuth2 } from '../../src/auth/sasl.js';
import { ConfigurationError, ExitCode } from '../../src/errors.js';

/** Base64 of exactly these bytes; ^A is written as \x01 so each byte is visible. */
function b64(bytes: string): string {
  return Buffer.from(bytes, 'utf8').toString('base64');
}

function decode(base64: string): string {
  return Buffer.from(base64, 'base64').toString('utf8');
}

/** Runs `fn`, expects a SASL_INVALID_INPUT ConfigurationError and returns it. */
function rejection(fn: () => unknown): ConfigurationError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    const err = error as ConfigurationError;
    expect(err.code).toBe('SASL_INVALID_INPUT');
    expect(err.exitCode).toBe(ExitCode.usage);
    return err;
  }
  throw new Error('expected a SASL_INVALID_INPUT error, got none');
}

const TOKEN = 'eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbSJ9.c2ln';

describe('buildXOAuth2', () => {
  it("matches nodemailer's known-answer vector", () => {
    expect(buildXOAuth2('test@example.com', 'abc')).toBe(
      'dXNlcj10ZXN0QGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIGFiYwEB',
    );
  });

  it('writes user, then auth=Bearer, each ended by ^A, and a final ^A', () => {
    expect(decode(buildXOAuth2('shared@contoso.com', TOKEN))).toBe(
      `user=shared@contoso.com\x01auth=Bearer ${TOKEN}\x01\x01`,
    );
  });

  it('leaves = and , in the user as they are (XOAUTH2 has no escaping)', () => {
    expect(buildXOAuth2('a=b,c@example.com', 'abc')).toBe(
      b64('user=a=b,c@example.com\x01auth=Bearer abc\x01\x01'),
    );
  });

  it('encodes a non-ASCII user as UTF-8', () => {
    expect(buildXOAuth2('jörg@example.com', 'abc')).toBe(
      b64('user=j\u00f6rg@example.com\x01auth=Bearer abc\x01\x01'),
    );
    expect(Buffer.from(buildXOAuth2('ö@x', 'abc'), 'base64').subarray(5, 7)).toEqual(
      Buffer.from([0xc3, 0xb6]),
    );
  });
});

describe('buildOAuthBearer', () => {
  it("matches RFC 7628 §4.1's example", () => {
    // n,a=user@example.com,^Ahost=server.example.com^Aport=143^Aauth=Bearer vF9d…Cg==^A^A
    expect(
      buildOAuthBearer(
        'user@example.com',
        'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==',
        'server.example.com',
        143,
      ),
    ).toBe(
      'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB',
    );
  });

  it('escapes = as =3D and , as =2C in the authzid (RFC 5801 saslname)', () => {
    const expected =
      'bixhPWE9M0RiPTJDY0BleGFtcGxlLmNvbSwBaG9zdD1pbWFwLmV4YW1wbGUuY29tAXBvcnQ9OTkzAWF1dGg9QmVhcmVyIHRvay5lbi1ffisvPQEB';
    expect(decode(expected)).toBe(
      'n,a=a=3Db=2Cc@example.com,\x01host=imap.example.com\x01port=993\x01auth=Bearer tok.en-_~+/=\x01\x01',
    );
    expect(buildOAuthBearer('a=b,c@example.com', 'tok.en-_~+/=', 'imap.example.com', 993)).toBe(
      expected,
    );
  });

  it('escapes = before , so an escaped comma is not escaped twice', () => {
    expect(decode(buildOAuthBearer('x=2C@example.com', 'abc', 'h', 1))).toBe(
      'n,a=x=3D2C@example.com,\x01host=h\x01port=1\x01auth=Bearer abc\x01\x01',
    );
    expect(decode(buildOAuthBearer(',,==', 'abc', 'h', 65535))).toBe(
      'n,a==2C=2C=3D=3D,\x01host=h\x01port=65535\x01auth=Bearer abc\x01\x01',
    );
  });

  it('writes the port in decimal without padding', () => {
    expect(buildOAuthBearer('u@example.com', 'abc', 'smtp.example.com', 587)).toBe(
      b64('n,a=u@example.com,\x01host=smtp.example.com\x01port=587\x01auth=Bearer abc\x01\x01'),
    );
  });
});

describe('rejected input', () => {
  const builders = {
    XOAUTH2: (user: string, token: string) => buildXOAuth2(user, token),
    OAUTHBEARER: (user: string, token: string) =>
      buildOAuthBearer(user, token, 'outlook.office365.com', 993),
  };

  for (const [mechanism, build] of Object.entries(builders)) {
    describe(mechanism, () => {
      it('rejects a user with ^A, which would inject a SASL field', () => {
        const err = rejection(() => build('victim@example.com\x01auth=Bearer forged', 'abc'));
        expect(err.message).toBe(
          'SASL user contains the control character U+0001 at position 18. Set the mailbox address without control characters or line breaks, e.g. user@contoso.com.',
        );
        expect(err.problems).toEqual([
          {
            field: 'user',
            message: 'SASL user contains the control character U+0001 at position 18',
          },
        ]);
      });

      it('rejects a user with CR LF', () => {
        const err = rejection(() => build('user@example.com\r\nA1 LOGOUT', 'abc'));
        expect(err.message).toContain('U+000D at position 16');
      });

      it('rejects a user with a bare LF', () => {
        expect(rejection(() => build('user@example.com\n', 'abc')).message).toContain('U+000A');
      });

      it('rejects a user with NUL', () => {
        expect(rejection(() => build('user\u0000@example.com', 'abc')).message).toContain(
          'U+0000 at position 4',
        );
      });

      it('rejects a user with a tab, ESC, DEL or a C1 control', () => {
        for (const [char, name] of [
          ['\t', 'U+0009'],
          ['\u001b', 'U+001B'],
          ['\u001f', 'U+001F'],
          ['\u007f', 'U+007F'],
          ['\u0085', 'U+0085'],
        ] as const) {
          expect(rejection(() => build(`a${char}b@example.com`, 'abc')).message).toContain(name);
        }
      });

      it('rejects an empty user', () => {
        expect(rejection(() => build('', 'abc')).message).toBe(
          'SASL user is empty. Set the mailbox address to sign in as, e.g. user@contoso.com.',
        );
      });

      it('rejects an empty token', () => {
        const err = rejection(() => build('user@example.com', ''));
        expect(err.message).toMatch(/^SASL accessToken is empty\./);
        expect(err.problems[0]?.field).toBe('accessToken');
      });

      it('rejects a token with whitespace or control characters, without quoting it', () => {
        for (const bad of [
          `${TOKEN}\n`,
          `${TOKEN}\r\n`,
          `Bearer ${TOKEN}`,
          `${TOKEN}\x01auth=Bearer x`,
          `${TOKEN}\u0000`,
          `${TOKEN}\t`,
          `${TOKEN}\u007f`,
          `${TOKEN}\u00a0`,
        ]) {
          const err = rejection(() => build('user@example.com', bad));
          expect(err.message).toBe(
            'SASL accessToken contains whitespace, a control character or a non-ASCII character. Pass the access token exactly as the token endpoint returned it, without a trailing newline.',
          );
          expect(JSON.stringify(err.toJSON())).not.toContain(TOKEN.slice(0, 12));
          expect(err.message).not.toContain('c2ln');
        }
      });

      it('reports the user first when both the user and the token are wrong', () => {
        expect(rejection(() => build('', '')).problems[0]?.field).toBe('user');
      });
    });
  }

  describe('OAUTHBEARER host and port', () => {
    it('rejects a host with control characters', () => {
      for (const host of ['imap.example.com\x01port=1', 'imap.example.com\r\n', 'imap\u0000']) {
        const err = rejection(() => buildOAuthBearer('u@example.com', 'abc', host, 993));
        expect(err.problems[0]?.field).toBe('host');
        expect(err.message).toMatch(/^SASL host contains the control character U\+00/);
      }
    });

    it('rejects an empty host', () => {
      expect(rejection(() => buildOAuthBearer('u@example.com', 'abc', '', 993)).message).toBe(
        'SASL host is empty. Set the server host name, e.g. outlook.office365.com.',
      );
    });

    it('rejects a port outside 1-65535 or not a whole number', () => {
      for (const port of [0, -1, 65_536, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        const err = rejection(() => buildOAuthBearer('u@example.com', 'abc', 'h', port));
        expect(err.problems[0]?.field).toBe('port');
        expect(err.message).toContain(
          `SASL port is ${String(port)}, not a whole number from 1 to 65535`,
        );
      }
    });

    it('accepts the bounds 1 and 65535', () => {
      expect(decode(buildOAuthBearer('u@example.com', 'abc', 'h', 1))).toContain('\x01port=1\x01');
      expect(decode(buildOAuthBearer('u@example.com', 'abc', 'h', 65_535))).toContain(
        '\x01port=65535\x01',
      );
    });
  });
});
