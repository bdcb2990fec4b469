import { type DoctorReport, type DoctorStep, runDoctor } from '../../doctor/run.js';
import { ExitCode, MailbridgeError } from '../../errors.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';

const MARK: Record<DoctorStep['status'], string> = {
  passed: '[ok]  ',
  failed: '[FAIL]',
  skipped: '[skip]',
};

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check each setup step for a mailbox and name the one that is missing',
  usage:
    'doctor --mailbox ADDRESS [--imap] [--smtp] [--scoped-smtp] [--send-test-to ADDRESS] [--json]',
  usesSettings: true,
  flags: [
    {
      name: 'mailbox',
      type: 'string',
      value: 'ADDRESS',
      address: true,
      required: true,
      help: 'mailbox the app should reach',
    },
    { name: 'imap', type: 'boolean', help: 'check IMAP (default: IMAP and SMTP)' },
    { name: 'smtp', type: 'boolean', help: 'check SMTP (default: IMAP and SMTP)' },
    {
      name: 'send-test-to',
      type: 'string',
      value: 'ADDRESS',
      address: true,
      help: 'also send one test message there',
    },
    {
      name: 'scoped-smtp',
      type: 'boolean',
      help: 'SMTP is granted in Exchange over a scope (setup exchange --smtp-scope), not tenant-wide',
    },
    {
      name: 'json',
      type: 'boolean',
      help: 'print { ok, steps: [{ name, status, code?, detail?, fix?, warning? }] }',
    },
  ],
  details: [
    'Steps, in order: configuration, token, token claims (aud, tid, roles), imap connect (TLS),',
    'imap authenticate, imap list and select, smtp connect (STARTTLS), smtp auth, smtp test message.',
    'It stops at the first failure and exits with its code (1 unexpected server reply, 2 configuration,',
    '3 authentication or permission, 4 unreachable). A step can pass with a warning: a certificate',
    'credential that expires within 30 days, or, with --scoped-smtp, a token that carries the',
    'tenant-wide SMTP.SendAsApp (which makes the Exchange scope moot).',
  ].join('\n'),
  async run({ args, io, logger, loadConfig }) {
    const mailbox = args.values.mailbox;
    if (typeof mailbox !== 'string' || mailbox === '') {
      throw usageError(
        '--mailbox ADDRESS is required',
        'Name the mailbox to check, e.g. --mailbox archive@contoso.com.',
      );
    }
    const json = args.values.json === true;
    const print = (step: DoctorStep) => {
      if (json) return;
      writeLine(
        io.stdout,
        `${MARK[step.status]} ${step.name.padEnd(22)} ${step.code ?? ''}${step.code && step.detail ? ': ' : ''}${step.detail ?? ''}`,
      );
      if (step.fix) writeLine(io.stdout, `       fix: ${step.fix}`);
      if (step.warning) writeLine(io.stdout, `       warning: ${step.warning}`);
    };
    let report: DoctorReport;
    try {
      const config = await loadConfig();
      report = await runDoctor(config, {
        mailbox,
        imap: args.values.imap === true,
        smtp: args.values.smtp === true,
        scopedSmtp: args.values['scoped-smtp'] === true,
        ...(typeof args.values['send-test-to'] === 'string'
          ? { sendTestTo: args.values['send-test-to'] }
          : {}),
        logger,
        onStep: print,
      });
    } catch (error) {
      if (!(error instanceof MailbridgeError)) throw error;
      // The configuration is the first step: report it like the others.
      const problems =
        'problems' in error && Array.isArray(error.problems) && error.problems.length > 0
          ? (error.problems as { field: string; message: string }[])
              .map((p) => `${p.field}: ${p.message}`)
              .join(' | ')
          : error.message;
      const step: DoctorStep = {
        name: 'configuration',
        status: 'failed',
        code: error.code,
        detail: problems,
        fix: error.remedy,
      };
      print(step);
      report = { ok: false, steps: [step], exitCode: error.exitCode };
    }
    if (json) {
      writeJson(io.stdout, { ok: report.ok, steps: report.steps });
    } else {
      const failed = report.steps.find((s) => s.status === 'failed');
      writeLine(
        io.stdout,
        failed
          ? `Result: failed at "${failed.name}" (exit ${report.exitCode})`
          : 'Result: all checks passed',
      );
    }
    return report.ok ? ExitCode.ok : report.exitCode;
  },
};
