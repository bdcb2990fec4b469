/**
 * What every command shares: output into a pipe whose reader went away,
 * group help, "did you mean" for commands and flags, repeated flags, the
 * warning prefix, and start-up without loading every command's libraries.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_INDEX } from '../../src/cli/command-index.js';
import { stderrLogger } from '../../src/cli/output.js';
import { appEnvironment } from '../helpers/app-env.js';
import { CLI_PATH, cliEnv } from '../helpers/run-cli.js';
import { runCliInProcess, sink } from '../helpers/run-cli-in-process.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const APP = 'a3b1c2d4-e5f6-4789-9abc-def012345678';
const OBJECT = '0b7e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4';
const EXCHANGE = 'https://outlook.office365.com';
const SETUP_EXCHANGE = [
  'setup',
  'exchange',
  '--tenant',
  TENANT,
  '--app-id',
  APP,
  '--object-id',
  OBJECT,
];

let dir: string;
let service: TokenService;
let tokenEnv: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-cli-framework-'));
  service = await startTokenService();
  const app = service.registerApp({ roles: { [EXCHANGE]: ['IMAP.AccessAsApp'] } });
  tokenEnv = appEnvironment(service, app);
});
afterAll(async () => {
  await service.close();
  await rm(dir, { recursive: true, force: true });
});

/** `runCli` in this process: for behaviour that needs no child, faster than spawning one. */
const run = (argv: string[]) => runCliInProcess(argv);

interface PipeRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI with the reader of stdout (or stderr) going away as
 * `| head -1` does: after the first line, or before anything is written.
 */
function runIntoClosedPipe(
  args: string[],
  options: {
    close: 'stdout' | 'stderr';
    when: 'first-line' | 'at-once';
    env?: Record<string, string>;
  },
): Promise<PipeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      env: cliEnv(options.env ?? {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = options.close === 'stdout' ? child.stdout : child.stderr;
    const kept = options.close === 'stdout' ? child.stderr : child.stdout;
    let read = '';
    let keptText = '';
    kept.setEncoding('utf8').on('data', (chunk: string) => {
      keptText += chunk;
    });
    if (options.when === 'at-once') {
      closed.destroy();
    } else {
      closed.setEncoding('utf8').on('data', (chunk: string) => {
        read += chunk;
        if (read.includes('\n')) closed.destroy();
      });
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mailbridge ${args.join(' ')} did not end after its reader went away`));
    }, 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const other = keptText;
      resolve({
        code,
        signal,
        stdout: options.close === 'stdout' ? read : other,
        stderr: options.close === 'stderr' ? read : other,
      });
    });
  });
}

describe('output into a pipe whose reader went away', () => {
  it('setup exchange: a long script cut after its first line ends with 141 and says nothing', async () => {
    const list = join(dir, 'mailboxes.txt');
    const addresses = Array.from({ length: 30_000 }, (_, i) => `mailbox${i}@contoso.com`);
    await writeFile(list, `${addresses.join('\n')}\n`);
    const result = await runIntoClosedPipe([...SETUP_EXCHANGE, '--mailboxes', list], {
      close: 'stdout',
      when: 'first-line',
    });
    expect(result.stderr).toBe('');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(141);
  });

  it('--help and a command help into a closed pipe end with 141 and say nothing', async () => {
    for (const args of [['--help'], ['setup', 'cert', '--help'], ['imap', '--help']]) {
      const result = await runIntoClosedPipe(args, { close: 'stdout', when: 'at-once' });
      expect({ args, stderr: result.stderr, code: result.code }).toEqual({
        args,
        stderr: '',
        code: 141,
      });
    }
  });

  it('token: the reader gone before the token came ends with 141, not a stack', async () => {
    const result = await runIntoClosedPipe(['token'], {
      close: 'stdout',
      when: 'at-once',
      env: tokenEnv,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(141);
  });

  it('an error message into a closed stderr ends with 141 too', async () => {
    const result = await runIntoClosedPipe(['tokn'], { close: 'stderr', when: 'at-once' });
    expect(result.stdout).toBe('');
    expect(result.code).toBe(141);
  });

  it('output that fitted before the reader left still exits 0', async () => {
    const result = await runIntoClosedPipe(['--version'], { close: 'stdout', when: 'first-line' });
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

/** Groups are derived from the command names: every prefix of a longer name. */
const GROUPS = [
  ...new Set(
    COMMAND_INDEX.flatMap((c) => {
      const words = c.name.split(' ');
      return words.slice(0, -1).map((_, i) => words.slice(0, i + 1).join(' '));
    }),
  ),
];

describe('help for groups of commands', () => {
  it('knows the groups there are', () => {
    expect(GROUPS).toEqual(expect.arrayContaining(['setup', 'imap', 'relay', 'archive']));
  });

  it.each(GROUPS)(
    '%s: its --help and `help` list its commands with their summaries',
    async (group) => {
      const members = COMMAND_INDEX.filter((c) => c.name.startsWith(`${group} `));
      for (const argv of [
        [...group.split(' '), '--help'],
        ['help', ...group.split(' ')],
      ]) {
        const { code, stdout, stderr } = await run(argv);
        expect({ argv, code, stderr }).toEqual({ argv, code: 0, stderr: '' });
        for (const member of members) {
          expect(stdout).toContain(member.name);
          expect(stdout).toContain(member.summary);
        }
      }
    },
  );

  it('a group alone prints its help and exits 2', async () => {
    const { code, stdout } = await run(['setup']);
    expect(code).toBe(2);
    expect(stdout).toContain('setup consent-url');
  });

  it('the main help lists every command with its summary', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    for (const entry of COMMAND_INDEX) expect(stdout).toContain(`${entry.name}  `);
    for (const entry of COMMAND_INDEX) expect(stdout).toContain(entry.summary);
  });
});

describe('unknown commands and flags', () => {
  it('`help nonsense` exits 2 and names the command', async () => {
    const { code, stdout, stderr } = await run(['help', 'nonsense']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain("unknown command 'nonsense'");
    expect((await run(['help', 'tokn'])).stderr).toContain('Did you mean `mailbridge token`?');
  });

  it.each([
    [['tokn'], 'Did you mean `mailbridge token`?'],
    [['imap', 'foldrs'], 'Did you mean `mailbridge imap folders`?'],
    [['setup', 'exchnage'], 'Did you mean `mailbridge setup exchange`?'],
    [['relay', 'staus'], 'Did you mean `mailbridge relay status`?'],
    [['archive', 'verfy', 'dir'], 'Did you mean `mailbridge archive verify`?'],
  ])('%j: exit 2 and %s', async (argv, hint) => {
    const { code, stderr } = await run(argv);
    expect(code).toBe(2);
    expect(stderr).toContain(hint);
  });

  it('an unknown flag gets a "did you mean" and none of the parser\'s own text', async () => {
    const { code, stderr } = await run(['token', '--jsn']);
    expect(code).toBe(2);
    expect(stderr).toContain("unknown flag '--jsn'");
    expect(stderr).toContain('Did you mean --json?');
    expect(stderr).not.toMatch(/positional|place it at the end|-- "/);
  });

  it.each([
    [['setup', 'consent-url', '--tenant'], '--tenant TENANT: the value is missing'],
    [
      ['setup', 'consent-url', '--tenant', '--cloud', 'china'],
      '--tenant TENANT: the value is missing',
    ],
    [['token', '--json=yes'], '--json takes no value'],
    [['--verison'], 'Did you mean --version?'],
  ])('%j is refused in our words: %s', async (argv, message) => {
    const { code, stderr } = await run(argv);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).not.toMatch(/argument is ambiguous|argument missing|does not take an argument/);
  });

  it('does not echo control characters from argv', async () => {
    const command = await run(['tok\u001b]0;owned\u0007n']);
    const flag = await run(['token', '--js\u001b[2Jn']);
    for (const { code, stderr } of [command, flag]) {
      expect(code).toBe(2);
      expect(stderr).not.toContain('\u001b');
      expect(stderr).not.toContain('\u0007');
      expect(stderr).toContain('\\x1b');
    }
  });
});

describe('repeated flags', () => {
  it('refuses a single-value flag given twice with exit 2', async () => {
    const { code, stdout, stderr } = await run([
      ...SETUP_EXCHANGE,
      '--mailbox',
      'a@contoso.com',
      '--app-id',
      APP,
    ]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('--app-id was given more than once');
    const send = await run(['send', '--from', 'a@contoso.com', '--from', 'b@contoso.com']);
    expect(send.code).toBe(2);
    expect(send.stderr).toContain('--from was given more than once');
  });

  it('keeps repeatable flags repeatable', async () => {
    const { code, stdout } = await run([
      ...SETUP_EXCHANGE,
      '--mailbox',
      'a@contoso.com',
      '--mailbox',
      'b@contoso.com',
    ]);
    expect(code).toBe(0);
    expect(stdout).toContain("'a@contoso.com'");
    expect(stdout).toContain("'b@contoso.com'");
  });
});

describe('stray words after the flags', () => {
  it('are refused, never dropped: a second recipient or an unquoted subject must not send less', async () => {
    const send = await run([
      ...['send', '--from', 'a@contoso.com', '--to', 'a@contoso.com', 'b@contoso.com'],
      ...['--subject', 'two', 'words', '--text', 't'],
    ]);
    expect(send.code).toBe(2);
    expect(send.stderr).toContain("unexpected argument 'b@contoso.com' for send");
    expect(send.stderr).toContain('--to a@x --to b@x');
    const token = await run(['token', '--send-certificate-chain', 'false']);
    expect(token.code).toBe(2);
    expect(token.stderr).toContain("unexpected argument 'false' for token");
    const setup = await run([...SETUP_EXCHANGE, '--mailbox', 'a@contoso.com', 'b@contoso.com']);
    expect(setup.code).toBe(2);
    expect(setup.stdout).toBe('');
  });

  it('names every missing required flag in one message', async () => {
    const list = await run(['imap', 'list']);
    expect(list.code).toBe(2);
    expect(list.stderr).toContain('--mailbox ADDRESS and --folder NAME are required');
    const consent = await run(['setup', 'consent-url']);
    expect(consent.stderr).toContain(
      '--tenant TENANT, --client-id ID and --redirect-uri URI are required',
    );
  });

  it('relay without --config says that the file is required', async () => {
    const { code, stderr } = await run(['relay']);
    expect(code).toBe(2);
    expect(stderr).toContain('--config FILE is required');
  });

  it('are taken by the commands that name them', async () => {
    const verify = await run(['archive', 'verify', '/nonexistent-mailbridge-archive']);
    expect(verify.stderr).toContain('/nonexistent-mailbridge-archive is not a directory');
    expect(verify.code).toBe(2);
  });
});

describe('mailbox addresses', () => {
  it('are checked before any command that signs in runs: nothing is created, nothing is sent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-addr-'));
    try {
      for (const argv of [
        ['archive', '--mailbox', 'bad addr', '--out', dir],
        ['xoauth2', '--user', 'bad addr'],
        ['doctor', '--mailbox', 'no address'],
        ['imap', 'folders', '--mailbox', 'a@b.example\r\nx'],
      ]) {
        const { code, stdout, stderr } = await run(argv);
        expect(code, argv.join(' ')).toBe(2);
        expect(stdout).toBe('');
        expect(stderr).toContain('is not a mail address');
        expect(stderr).not.toMatch(/[\r]/);
      }
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('imap fetch --out', () => {
  const fetch = ['imap', 'fetch', '--mailbox', 'a@contoso.com', '--folder', 'INBOX', '--uid', '1'];

  it("names a file it cannot create as the user's to fix, before asking any server", async () => {
    const { code, stderr } = await run([...fetch, '--out', '/nonexistent-dir/x.eml']);
    expect(code).toBe(2);
    expect(stderr).toContain('OUTPUT_UNWRITABLE');
    expect(stderr).toContain('/nonexistent-dir/x.eml');
    expect(stderr).not.toContain('IMAP');
  });

  it('leaves an existing file as it is unless --force', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-fetch-'));
    try {
      const out = join(dir, 'kept.eml');
      await writeFile(out, 'mine');
      const { code, stderr } = await run([...fetch, '--out', out]);
      expect(code).toBe(2);
      expect(stderr).toContain('already exists');
      expect(await readFile(out, 'utf8')).toBe('mine');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('warnings', () => {
  it('have one prefix, the one README documents, also from the logger', () => {
    const chunks: string[] = [];
    stderrLogger(sink(chunks), false).log('warn', 'archive: no folder matches', {
      pattern: 'Arch\u001b[2Jive',
    });
    expect(chunks.join('')).toBe(
      'mailbridge: warning: archive: no folder matches pattern=Arch\\x1b[2Jive\n',
    );
  });
});

describe('start-up loads only what the command needs', () => {
  /** Runs the built CLI with a loader hook that records every module URL it loads. */
  async function loadedModules(args: string[]): Promise<string[]> {
    const log = join(dir, `loaded-${args.join('-')}.txt`);
    const hook = join(dir, 'record-loads.mjs');
    await writeFile(
      hook,
      [
        "import { register } from 'node:module';",
        `register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(
          "import { appendFileSync } from 'node:fs';\n" +
            'export async function load(url, context, next) {\n' +
            `  appendFileSync(${JSON.stringify(log)}, url + '\\n');\n` +
            '  return next(url, context);\n' +
            '}\n',
        )}));`,
      ].join('\n'),
    );
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', hook, CLI_PATH, ...args], {
        env: cliEnv({}),
        stdio: 'ignore',
      });
      child.on('error', reject);
      child.on('close', () => resolve());
    });
    return (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  }

  const HEAVY = [
    '@azure/msal-node',
    'imapflow',
    'nodemailer',
    'smtp-server',
    'mailparser',
    'node-forge',
  ];
  const packagesIn = (urls: string[]) =>
    HEAVY.filter((name) => urls.some((url) => url.includes(`/node_modules/${name}/`)));

  it.each([[['--version']], [['--help']], [['setup', '--help']], [['tokn']]])(
    '%j loads none of the commands and no mail or auth library',
    async (args) => {
      const urls = await loadedModules(args);
      expect(urls.some((url) => url.endsWith('/dist/cli/main.js'))).toBe(true);
      expect(urls.filter((url) => url.includes('/dist/cli/commands/'))).toEqual([]);
      expect(packagesIn(urls)).toEqual([]);
    },
  );

  it('a command loads its own module and libraries, not the others', async () => {
    const urls = await loadedModules(['token', '--help']);
    expect(
      urls.filter((url) => url.includes('/dist/cli/commands/')).map((u) => u.split('/').pop()),
    ).toEqual(['token.js']);
    expect(packagesIn(urls)).toEqual(['@azure/msal-node']);
  });
});

describe('errors with --json', () => {
  it('are one line of stdout, so that a stream of JSON lines stays one', async () => {
    const { code, stdout, stderr } = await run([
      'migrate',
      '--from',
      'imap:/x',
      '--to',
      'm365:bob@contoso.example',
      '--json',
    ]);
    expect(code).toBe(2);
    expect(stderr).toBe('');
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      ok: false,
      error: { code: 'MIGRATE_ENDPOINT_INVALID', exitCode: 2 },
    });
  });
});
