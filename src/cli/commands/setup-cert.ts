import type { ErrorCode } from '../../error-codes.js';
import { ConfigurationError, ExitCode } from '../../errors.js';
import {
  CERTIFICATE_FILE_NAMES,
  DEFAULT_CERTIFICATE_DAYS,
  DEFAULT_CERTIFICATE_SUBJECT,
  DEFAULT_RSA_KEY_BITS,
  generateCertificate,
  MAX_CERTIFICATE_DAYS,
  writeCertificateFiles,
} from '../../setup/certificate.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine, writeWarning } from '../output.js';

export const setupCertCommand: Command = {
  name: 'setup cert',
  summary: 'make a self-signed certificate credential for the app registration',
  usage: 'setup cert --out-dir DIR [--subject CN] [--days N] [--key-size BITS] [--force] [--json]',
  usesSettings: false,
  flags: [
    {
      name: 'out-dir',
      type: 'string',
      value: 'DIR',
      required: true,
      help: 'where to write the files (created with mode 0700 if missing)',
    },
    {
      name: 'subject',
      type: 'string',
      value: 'CN',
      help: `subject common name (default ${DEFAULT_CERTIFICATE_SUBJECT})`,
    },
    {
      name: 'days',
      type: 'string',
      value: 'N',
      help: `validity in days, 1 to ${MAX_CERTIFICATE_DAYS} (default ${DEFAULT_CERTIFICATE_DAYS})`,
    },
    {
      name: 'key-size',
      type: 'string',
      value: 'BITS',
      help: `RSA key size, 2048 to 8192 (default ${DEFAULT_RSA_KEY_BITS})`,
    },
    { name: 'force', type: 'boolean', help: 'replace existing files (the old key is lost)' },
    {
      name: 'json',
      type: 'boolean',
      help: 'print the files, thumbprints, validity and keyId as JSON',
    },
  ],
  details: [
    'Files written to --out-dir:',
    `  ${CERTIFICATE_FILE_NAMES.privateKey.padEnd(20)} private key, PKCS#8 PEM, unencrypted, mode 0600`,
    `  ${CERTIFICATE_FILE_NAMES.certificatePem.padEnd(20)} certificate, PEM`,
    `  ${CERTIFICATE_FILE_NAMES.certificateDer.padEnd(20)} certificate, DER (binary), as Windows exports .cer`,
    `  ${CERTIFICATE_FILE_NAMES.combinedPem.padEnd(20)} key + certificate, mode 0600: use it as AZURE_CLIENT_CERTIFICATE_PATH`,
    `  ${CERTIFICATE_FILE_NAMES.keyCredentials.padEnd(20)} Microsoft Graph keyCredentials (customKeyIdentifier, displayName,`,
    `  ${''.padEnd(20)} startDateTime, endDateTime, key, keyId, type, usage) for the app manifest`,
    'Upload mailbridge.cer or mailbridge.crt (never the .key or .pem) in the Entra admin center',
    '(App registrations > Certificates & secrets > Upload certificate), or let',
    '`mailbridge setup entra --cert DIR/mailbridge.crt` upload it by script.',
    'Existing files are never replaced without --force (exit 2, SETUP_FILE_EXISTS).',
  ].join('\n'),
  async run({ args, io }) {
    const outDir = args.values['out-dir'];
    if (typeof outDir !== 'string' || outDir === '') {
      throw usageError(
        '--out-dir DIR is required',
        'Name the directory for the key and certificate, e.g. --out-dir ./certs.',
      );
    }
    const generated = generateCertificate({
      ...(typeof args.values.subject === 'string' ? { subject: args.values.subject } : {}),
      ...wholeNumber(args.values.days, 'days', 'SETUP_DAYS', '--days 365'),
      ...wholeNumber(args.values['key-size'], 'keyBits', 'SETUP_KEY_SIZE', '--key-size 3072'),
    });
    const files = await writeCertificateFiles(generated, {
      outDir,
      force: args.values.force === true,
    });
    const summary = {
      files,
      subject: generated.subject,
      keyBits: generated.keyBits,
      thumbprintSha1: generated.thumbprintSha1,
      thumbprintSha256: generated.thumbprintSha256,
      notBefore: generated.notBefore.toISOString(),
      notAfter: generated.notAfter.toISOString(),
      keyId: generated.keyCredential.keyId,
      warnings: generated.warnings,
    };
    if (args.values.json === true) {
      writeJson(io.stdout, { ok: true, ...summary });
      return ExitCode.ok;
    }
    for (const warning of generated.warnings) {
      writeWarning(io.stderr, warning);
    }
    const out = (line = '') => writeLine(io.stdout, line);
    out(`Wrote a self-signed certificate for ${summary.subject} (RSA ${summary.keyBits} bits):`);
    out(`  ${files.privateKey}  private key (mode 0600)`);
    out(`  ${files.certificatePem}  certificate, PEM`);
    out(`  ${files.certificateDer}  certificate, DER`);
    out(`  ${files.combinedPem}  key + certificate (mode 0600)`);
    out(`  ${files.keyCredentials}  keyCredentials for the app manifest`);
    out(`Thumbprint (SHA-1):   ${summary.thumbprintSha1}`);
    out(`Thumbprint (SHA-256): ${summary.thumbprintSha256}`);
    out(`Valid from ${summary.notBefore} until ${summary.notAfter}`);
    out();
    out('Next:');
    out(
      `  upload ${files.certificateDer} to the app registration (Certificates & secrets), or run`,
    );
    out(`    mailbridge setup entra --cert ${files.certificatePem}`);
    out(`  then set AZURE_CLIENT_CERTIFICATE_PATH=${files.combinedPem}`);
    return ExitCode.ok;
  },
};

/** A flag holding a whole number, refused with the check's own code when it holds anything else. */
function wholeNumber<K extends string>(
  value: unknown,
  key: K,
  code: ErrorCode,
  example: string,
): Partial<Record<K, number>> {
  if (typeof value !== 'string') return {};
  if (!/^\d{1,9}$/.test(value)) {
    throw new ConfigurationError({
      code,
      message: `${example.split(' ')[0]} must be a whole number, not '${value}'`,
      remedy: `Use for example ${example}.`,
    });
  }
  return { [key]: Number(value) } as Partial<Record<K, number>>;
}
