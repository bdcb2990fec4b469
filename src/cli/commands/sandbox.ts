/**
 * `mailbridge sandbox …`: a Microsoft 365 stand-in on this machine (see
 * src/sandbox/), started in the background and driven by the other
 * subcommands through its folder.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigurationError, ExitCode, MailbridgeError } from '../../errors.js';
import {
  controlSandbox,
  isAlive,
  LOG_FILE,
  notRunning,
  readSandboxState,
  type SandboxState,
  serveSandbox,
} from '../../sandbox/daemon.js';
import {
  findApp,
  findTenant,
  parseDirectory,
  type SandboxApp,
  type SandboxDirectory,
  SEEDED_DIRECTORY,
  tenantOfApp,
  tenantOfMailbox,
  tenantsOf,
} from '../../sandbox/directory.js';
import { checkSandboxPackages } from '../../sandbox/packages.js';
import type { SandboxFault } from '../../sandbox/sandbox.js';
import {
  defaultSandboxDir,
  prepareSandboxDir,
  recordStartedDir,
  startedDir,
} from '../../sandbox/sandbox-folder.js';
import { shQuote } from '../../setup/shell-quote.js';
import { closestName } from '../../util/did-you-mean.js';
import { displayText } from '../../util/display-text.js';
import type { FlagSpec } from '../args.js';
import { usageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { writeJson, writeLine } from '../output.js';

const dirFlag: FlagSpec = {
  name: 'dir',
  type: 'string',
  value: 'DIR',
  help: 'folder of the sandbox (default $XDG_STATE_HOME/mailbridge/sandbox; as root /var/lib/mailbridge/sandbox when that is closed to others)',
};
const jsonFlag: FlagSpec = { name: 'json', type: 'boolean', help: 'print JSON' };
const appFlag: FlagSpec = {
  name: 'app',
  type: 'string',
  value: 'NAME',
  help: 'app name or client id (default the first app of the tenant)',
};
const tenantFlag: FlagSpec = {
  name: 'tenant',
  type: 'string',
  value: 'DOMAIN',
  help: 'settings for an app of this tenant, domain or id (default the first tenant, contoso.test)',
};
const startFlags: FlagSpec[] = [
  dirFlag,
  {
    name: 'port-base',
    type: 'string',
    value: 'N',
    help: 'token service on N, IMAP N+1, SMTP N+2, POP3 N+5 (N to N+5 used)',
  },
  {
    name: 'directory',
    type: 'string',
    value: 'FILE',
    help: 'JSON tenant, mailboxes and apps instead of the seeded contoso.test',
  },
  {
    name: 'token-lifetime',
    type: 'string',
    value: 'S',
    help: 'lifetime of access tokens in seconds (default 3599)',
  },
  appFlag,
  tenantFlag,
  jsonFlag,
];

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

function defaultDir(context: CommandContext): string {
  const env = context.io.env;
  return defaultSandboxDir(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'));
}

/**
 * --dir, else the default folder; for commands that drive a running sandbox, the
 * one the last `start --dir` started when none runs in the default folder.
 */
function sandboxDir(context: CommandContext, findStarted = false): string {
  const given = context.args.values.dir;
  if (typeof given === 'string' && given !== '') return resolve(given);
  const dir = defaultDir(context);
  if (!findStarted || readSandboxState(dir)) return dir;
  const started = startedDir(dir);
  return started && readSandboxState(started) ? started : dir;
}

function numberFlag(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n < min || n > max) {
    throw usageError(
      `${flag} must be a whole number from ${min} to ${max}`,
      `For example: ${flag} ${min}.`,
    );
  }
  return n;
}

function runOptions(context: CommandContext) {
  const { values } = context.args;
  const portBase = numberFlag(values['port-base'], '--port-base', 1024, 65530);
  const tokenLifetimeSeconds = numberFlag(values['token-lifetime'], '--token-lifetime', 1, 86_400);
  const file = values.directory;
  let directory: SandboxDirectory | undefined;
  if (typeof file === 'string') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw usageError(
        `--directory ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`,
        'Check the path and that this user may read it.',
      );
    }
    directory = parseDirectory(text, file);
  }
  return { portBase, tokenLifetimeSeconds, directory };
}

function runningState(dir: string): SandboxState {
  const state = readSandboxState(dir);
  if (!state) throw notRunning(dir);
  return state;
}

/** The app --app names, else the first app of --tenant (default the first tenant). */
function chosenApp(directory: SandboxDirectory, values: Record<string, unknown>): SandboxApp {
  const tenant = typeof values.tenant === 'string' ? values.tenant : undefined;
  const home = tenant === undefined ? directory.tenant : findTenant(directory, tenant);
  if (!home) {
    const domains = tenantsOf(directory).map((t) => t.domain);
    const suggestion = closestName(tenant as string, domains);
    throw new ConfigurationError({
      code: 'SANDBOX_TENANT_UNKNOWN',
      message: `The sandbox has no tenant ${displayText(tenant as string, 100)}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`,
      remedy: `Name one of: ${domains.join(', ')}.`,
    });
  }
  const apps = directory.apps.filter((a) => tenantOfApp(directory, a).id === home.id);
  const wanted = typeof values.app === 'string' ? findApp(directory, values.app) : apps[0];
  if (!wanted || !apps.includes(wanted)) {
    const named = typeof values.app === 'string' ? values.app : '(any)';
    throw new ConfigurationError({
      code: 'SANDBOX_APP_UNKNOWN',
      message: `The sandbox has no app ${displayText(named, 100)} in tenant ${home.domain}`,
      remedy: `Name one of: ${apps.map((a) => a.name).join(', ') || '(none: that tenant has no app)'}.`,
    });
  }
  return wanted;
}

function appEnv(state: SandboxState, values: Record<string, unknown>) {
  const app = chosenApp(state.directory, values);
  return {
    name: app.name,
    tenant: tenantOfApp(state.directory, app).domain,
    env: state.env[app.name] ?? {},
  };
}

/** `export NAME='value'` lines, or JSON: what `start` and `env` print. */
function printEnv(context: CommandContext, state: SandboxState, dir: string): void {
  const { name, tenant, env } = appEnv(state, context.args.values);
  if (context.args.values.json === true) {
    writeJson(context.io.stdout, { dir, app: name, tenant, env, endpoints: state.endpoints });
    return;
  }
  writeLine(context.io.stdout, `# mailbridge sandbox in ${dir}: app ${name}, tenant ${tenant}`);
  for (const [key, value] of Object.entries(env)) {
    writeLine(context.io.stdout, `export ${key}=${shQuote(value, key)}`);
  }
}

export const sandboxStartCommand: Command = {
  name: 'sandbox start',
  summary:
    'start a local Microsoft 365 stand-in (token service, IMAP, POP3, SMTP) and print its settings',
  usage:
    'sandbox start [--dir DIR] [--port-base N] [--directory FILE] [--token-lifetime S] [--tenant DOMAIN] [--app NAME] [--json]',
  usesSettings: false,
  flags: startFlags,
  details: [
    'Prints `export` lines for the first app (or --app, or the first app of --tenant): run',
    '`eval "$(mailbridge sandbox start)"`, then any command, e.g. `mailbridge doctor --mailbox archive@contoso.test`.',
    'Everything listens on 127.0.0.1 and is written under --dir. The servers keep running after this',
    'command: stop them with `mailbridge sandbox stop`.',
    '',
    '--directory FILE replaces the seeded tenants (contoso.test, fabrikam.test) with JSON of this shape:',
    '  {"tenant": {"id": GUID, "domain": "contoso.test"}, "otherTenants": [{"id", "domain"}],',
    '   "mailboxes": [{"address": "a@contoso.test", "folders": {"INBOX": 3, "Archive/2024": 2}}],',
    '   "apps": [{"name": "archiver", "clientId": GUID, "credential": "secret"|"certificate",',
    '             "roles": ["IMAP.AccessAsApp", "SMTP.SendAsApp", "POP.AccessAsApp"],',
    '             "mailboxes": ["a@contoso.test"], "tenant": "contoso.test"}]}',
    "otherTenants and an app's tenant (default the first tenant) are optional; an app is granted only",
    'mailboxes of its own tenant.',
  ].join('\n'),
  async run(context) {
    const dir = sandboxDir(context);
    // Bad flags are refused here, before anything is spawned.
    chosenApp(runOptions(context).directory ?? SEEDED_DIRECTORY, context.args.values);
    checkSandboxPackages();
    if (readSandboxState(dir)) {
      throw new MailbridgeError({
        code: 'SANDBOX_ALREADY_RUNNING',
        message: `A sandbox is already running in ${dir}`,
        remedy:
          'Print its settings with `mailbridge sandbox env`, stop it with `mailbridge sandbox stop`, or give another --dir.',
      });
    }
    prepareSandboxDir(dir);
    const log = join(dir, LOG_FILE);
    const out = openSync(log, 'w', 0o600);
    const passOn = ['dir', 'port-base', 'directory', 'token-lifetime'].flatMap((flag) => {
      const value = flag === 'dir' ? dir : context.args.values[flag];
      return typeof value === 'string'
        ? [`--${flag}`, flag === 'directory' ? resolve(value) : value]
        : [];
    });
    const child = spawn(
      process.execPath,
      [process.argv[1] as string, 'sandbox', 'run', ...passOn],
      {
        detached: true,
        stdio: ['ignore', out, out],
        env: context.io.env,
      },
    );
    closeSync(out);
    child.on('error', () => {});
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    let state: SandboxState | undefined;
    while (!state && !exited && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      const found = readSandboxState(dir);
      if (found?.pid === child.pid) state = found;
    }
    child.unref();
    if (!state) {
      if (!exited && child.pid) process.kill(child.pid, 'SIGTERM');
      // The background process's own error already has the prefix this one gets.
      const tail = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .slice(-5)
        .join('\n')
        .replace(/^mailbridge: error /gm, '');
      throw new MailbridgeError({
        code: 'SANDBOX_START_FAILED',
        message: `The sandbox did not start${exited ? '' : ` within ${START_TIMEOUT_MS / 1000} s`}: ${tail}`,
        remedy: `Read ${log}${tail.includes('EADDRINUSE') ? '; a port of --port-base is taken: choose another' : ''}.`,
      });
    }
    recordStartedDir(defaultDir(context), dir);
    printEnv(context, state, dir);
    return ExitCode.ok;
  },
};

export const sandboxRunCommand: Command = {
  name: 'sandbox run',
  summary:
    'run the sandbox in the foreground until stopped (what `sandbox start` runs in the background)',
  usage: 'sandbox run [--dir DIR] [--port-base N] [--directory FILE] [--token-lifetime S]',
  usesSettings: false,
  flags: startFlags.filter((flag) => !['json', 'app', 'tenant'].includes(flag.name)),
  async run(context) {
    const dir = sandboxDir(context);
    const { portBase, tokenLifetimeSeconds, directory } = runOptions(context);
    await serveSandbox({
      dir,
      ...(portBase === undefined ? {} : { portBase }),
      ...(tokenLifetimeSeconds === undefined ? {} : { tokenLifetimeSeconds }),
      ...(directory ? { directory } : {}),
    });
    return ExitCode.ok;
  },
};

export const sandboxEnvCommand: Command = {
  name: 'sandbox env',
  summary: "print the running sandbox's settings as `export` lines or JSON",
  usage: 'sandbox env [--dir DIR] [--tenant DOMAIN] [--app NAME] [--json]',
  usesSettings: false,
  flags: [dirFlag, appFlag, tenantFlag, jsonFlag],
  async run(context) {
    const dir = sandboxDir(context, true);
    printEnv(context, runningState(dir), dir);
    return ExitCode.ok;
  },
};

export const sandboxStatusCommand: Command = {
  name: 'sandbox status',
  summary: 'show whether a sandbox runs, its endpoints, mailboxes and apps with their grants',
  usage: 'sandbox status [--dir DIR] [--json]',
  usesSettings: false,
  flags: [dirFlag, jsonFlag],
  async run(context) {
    const dir = sandboxDir(context, true);
    const state = runningState(dir);
    const { directory, endpoints } = state;
    if (context.args.values.json === true) {
      writeJson(context.io.stdout, {
        dir,
        pid: state.pid,
        endpoints,
        tenant: directory.tenant,
        tenants: tenantsOf(directory),
        mailboxes: directory.mailboxes.map((m) => m.address),
        apps: directory.apps,
      });
      return ExitCode.ok;
    }
    const out = (line: string) => writeLine(context.io.stdout, line);
    out(`running in ${dir} (pid ${state.pid}) since ${state.startedAt}`);
    const at = (e: { host: string; port: number }) => `${e.host}:${e.port}`;
    out(
      `authority ${endpoints.authority}  imap ${at(endpoints.imap)}  smtp ${at(endpoints.smtp)}  pop3 ${at(endpoints.pop3)}`,
    );
    for (const tenant of tenantsOf(directory)) {
      out(`tenant ${tenant.domain} (${tenant.id})`);
      const inTenant = (address: string) => tenantOfMailbox(directory, address)?.id === tenant.id;
      out(
        `  mailboxes: ${
          directory.mailboxes
            .map((m) => m.address)
            .filter(inTenant)
            .join(', ') || 'none'
        }`,
      );
      for (const app of directory.apps.filter((a) => tenantOfApp(directory, a).id === tenant.id)) {
        out(
          `  app ${app.name} ${app.clientId} ${app.credential}; roles ${app.roles.join(', ') || 'none'}; granted ${app.mailboxes.join(', ') || 'nothing'}`,
        );
      }
    }
    return ExitCode.ok;
  },
};

/** Stops the sandbox in `dir` and waits until its processes are gone. */
async function stopSandbox(dir: string): Promise<boolean> {
  const state = readSandboxState(dir);
  if (!state) return false;
  await controlSandbox(dir, { action: 'stop' }).catch(() => {
    process.kill(state.pid, 'SIGTERM');
  });
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  const alive = () => [state.pid, ...state.serverPids].filter(isAlive);
  while (alive().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  // The watchdog ends the mail servers once the serving process is gone.
  for (const pid of alive()) process.kill(pid, 'SIGKILL');
  return true;
}

export const sandboxStopCommand: Command = {
  name: 'sandbox stop',
  summary: 'stop the running sandbox, leaving no process behind (its folder stays)',
  usage: 'sandbox stop [--dir DIR]',
  usesSettings: false,
  flags: [dirFlag],
  async run(context) {
    const dir = sandboxDir(context, true);
    const stopped = await stopSandbox(dir);
    writeLine(
      context.io.stderr,
      stopped ? `stopped the sandbox in ${dir}` : `no sandbox was running in ${dir}`,
    );
    return ExitCode.ok;
  },
};

export const sandboxResetCommand: Command = {
  name: 'sandbox reset',
  summary: 'stop the sandbox and delete its folder: mail, grants, secrets and CA',
  usage: 'sandbox reset [--dir DIR]',
  usesSettings: false,
  flags: [dirFlag],
  async run(context) {
    const dir = sandboxDir(context);
    await stopSandbox(dir);
    rmSync(dir, { recursive: true, force: true });
    writeLine(context.io.stderr, `removed ${dir}`);
    return ExitCode.ok;
  },
};

const grantFlags: FlagSpec[] = [
  dirFlag,
  { name: 'app', type: 'string', value: 'NAME', required: true, help: 'app name or client id' },
  {
    name: 'mailbox',
    type: 'string',
    value: 'ADDRESS',
    address: true,
    required: true,
    help: 'mailbox',
  },
];

function grantCommand(action: 'grant' | 'revoke'): Command {
  return {
    name: `sandbox ${action}`,
    summary:
      action === 'grant'
        ? "give an app access to a mailbox in the running sandbox (Exchange's Add-MailboxPermission)"
        : "take an app's access to a mailbox away in the running sandbox (Remove-MailboxPermission)",
    usage: `sandbox ${action} --app NAME --mailbox ADDRESS [--dir DIR]`,
    usesSettings: false,
    flags: grantFlags,
    async run(context) {
      const dir = sandboxDir(context, true);
      runningState(dir);
      const { app, mailbox } = context.args.values as { app: string; mailbox: string };
      await controlSandbox(dir, { action, app, mailbox });
      writeLine(
        context.io.stderr,
        `${action === 'grant' ? 'granted' : 'revoked'}: ${app} on ${mailbox}`,
      );
      return ExitCode.ok;
    },
  };
}

export const sandboxGrantCommand = grantCommand('grant');
export const sandboxRevokeCommand = grantCommand('revoke');

const FAULT_USAGE =
  'token 503|429|500 [--count N] | imap throttle --ms N [--count N] | imap bye-expired [--count N] | smtp 535-5.7.139 [--count N] | smtp 4xx [--count N] | token-lifetime --seconds S | clear';

/** As many as any test gives: the fault stays until `sandbox fault clear`. */
const UNTIL_CLEARED = 1_000_000_000;

/** The fault the operands and flags name. */
export function parseFault(words: string[], values: Record<string, unknown>): SandboxFault {
  const count = numberFlag(values.count, '--count', 1, 10_000) ?? 1;
  const [what, detail] = words;
  if (what === 'token' && (detail === '429' || detail === '503' || detail === '500')) {
    return { kind: 'token', status: Number(detail) as 429 | 500 | 503, count };
  }
  if (what === 'imap' && detail === 'throttle') {
    const ms = numberFlag(values.ms, '--ms', 1, 86_400_000) ?? 299_609;
    return { kind: 'imap-throttle', ms, count };
  }
  if (what === 'imap' && detail === 'bye-expired') return { kind: 'imap-bye', count };
  if (what === 'token-lifetime') {
    const seconds = numberFlag(values.seconds, '--seconds', 1, 86_400);
    if (seconds === undefined) {
      throw usageError(
        'token-lifetime needs --seconds S',
        'For example: token-lifetime --seconds 30.',
      );
    }
    return { kind: 'token-lifetime', seconds };
  }
  if (what === 'smtp' && detail === '535-5.7.139') {
    return {
      kind: 'smtp',
      stage: 'auth',
      // A tenant setting, not a passing state: every login gets it until `clear`, unless --count says.
      count: values.count === undefined ? UNTIL_CLEARED : count,
      // What Exchange answers when SMTP AUTH is turned off for the organisation (the default
      // for new tenants, and for basic authentication everywhere from the end of 2026).
      reply:
        '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.',
    };
  }
  if (what === 'smtp' && detail === '4xx') {
    return {
      kind: 'smtp',
      stage: 'mail',
      count,
      reply: '451 4.7.500 Server busy. Please try again later.',
    };
  }
  if (what === 'clear') return { kind: 'clear' };
  throw usageError(`Unknown fault: ${words.join(' ') || '(none)'}`, `Name one of: ${FAULT_USAGE}.`);
}

export const sandboxFaultCommand: Command = {
  name: 'sandbox fault',
  summary: 'make the running sandbox misbehave as Microsoft 365 does: throttling, outages, expiry',
  usage: `sandbox fault (${FAULT_USAGE}) [--dir DIR]`,
  usesSettings: false,
  operands: 'FAULT',
  flags: [
    dirFlag,
    {
      name: 'count',
      type: 'string',
      value: 'N',
      help: 'how many requests or commands get it (default 1; smtp 535-5.7.139: until clear)',
    },
    { name: 'ms', type: 'string', value: 'N', help: 'backoff time of `imap throttle` in ms' },
    {
      name: 'seconds',
      type: 'string',
      value: 'S',
      help: 'token lifetime of `token-lifetime`',
    },
  ],
  details: [
    '`imap bye-expired` ends the sessions of the next N IMAP commands with `* BYE Session invalidated -',
    'AccessTokenExpired`, as when a token expires mid-job; `token-lifetime --seconds S` makes tokens issued',
    'from now on live S seconds (sessions then end so at their expiry). `clear` forgets the token, IMAP and',
    'SMTP faults not given yet.',
  ].join('\n'),
  async run(context) {
    const dir = sandboxDir(context, true);
    const fault = parseFault(context.args.positionals, context.args.values);
    runningState(dir);
    await controlSandbox(dir, { action: 'fault', fault });
    writeLine(context.io.stderr, `fault set: ${context.args.positionals.join(' ')}`);
    return ExitCode.ok;
  },
};
