/**
 * Token cache benchmark (results and how to read them: bench/README.md).
 *
 * Against the local Entra-like token service (test/helpers/token-service.ts),
 * client secret credential, one process, one run:
 *   1. calls/s of a cached `getToken()` from our provider against calls/s of a
 *      cache hit of a bare msal-node `acquireTokenByClientCredential`, awaited
 *      one after another and in batches of concurrent calls; median of several
 *      alternating rounds, as a ratio ours / msal-node;
 *   2. token endpoint requests made by 1,000 concurrent callers on a cold
 *      provider, and the same on a cold msal-node client.
 *
 * Node reads NODE_EXTRA_CA_CERTS only at process start, so the launcher
 * (bench/support.ts) makes a throwaway CA and runs this file again in a child
 * that trusts it.
 *
 *   npx tsx bench/token.ts [--rounds 5] [--sample-ms 1000] [--write-readme]
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  ConfidentialClientApplication,
  LogLevel as MsalLogLevel,
  version as msalVersion,
} from '@azure/msal-node';
import { createTokenProvider, loadConfig, type TokenProvider } from '../src/index.js';
import {
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from '../test/helpers/token-service.js';
import {
  counts,
  markdownTable,
  median,
  progressLogger,
  README,
  runBench,
  writeReadmeSection,
} from './support.js';

const EXCHANGE = 'https://outlook.office365.com';
const SCOPES = [`${EXCHANGE}/.default`];
const OTHER_SCOPE = 'https://graph.microsoft.com/.default';
const CALLERS = 1_000;
/** Each cold token request is held this long by the service, so all callers overlap. */
const COLD_DELAY_MS = 100;
const COLD_ROUNDS = 3;
/** Awaited calls between two clock reads in the sequential loop. */
const CHUNK = 1_000;

interface BenchOptions {
  rounds: number;
  sampleMs: number;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '5' },
      'sample-ms': { type: 'string', default: '1000' },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  const rounds = Number(values.rounds);
  const sampleMs = Number(values['sample-ms']);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error('--rounds must be a whole number ≥ 1');
  if (!Number.isFinite(sampleMs) || sampleMs < 10) throw new Error('--sample-ms must be ≥ 10');
  return { rounds, sampleMs, writeReadme: values['write-readme'] };
}

// ---------------------------------------------------------------------------
// Launcher: make the CA, run the measuring child with it trusted, clean up.

// ---------------------------------------------------------------------------
// Measuring child

interface Subject {
  call: () => Promise<unknown>;
}

interface Results {
  sequential: { ours: number; msal: number };
  batch: { ours: number; msal: number };
  /** Token endpoint requests made while measuring cache hits (warm-up included). */
  cacheHitTokenRequests: { ours: number; msal: number };
  cold: Record<ColdScenario, ColdResult>;
}

type ColdScenario = 'ours' | 'msalNew' | 'msalResolved';

const COLD_SCENARIOS: Record<ColdScenario, string> = {
  ours: 'ours: new provider',
  msalNew: 'msal-node: new client',
  msalResolved: 'msal-node: client with its authority resolved, no token cached',
};

/** One entry per round in each list. */
interface ColdResult {
  /** Token endpoint requests. */
  requests: number[];
  /** openid-configuration requests. */
  metadata: number[];
  /** Distinct access tokens the callers got. */
  distinctTokens: number[];
  failures: number[];
  /** Milliseconds until every caller had its token (or error). */
  elapsedMs: number[];
}

async function measure(options: BenchOptions): Promise<number> {
  const service = await startTokenService();
  try {
    const app = service.registerApp({ roles: { [EXCHANGE]: ['IMAP.AccessAsApp'] } });
    const results = await run(service, app, options);
    const machine = machineInfo();
    const table = renderTable(results, options);
    process.stdout.write(`${renderMachine(machine)}\n\n${table}\n`);

    const problems = check(results);
    for (const problem of problems) process.stderr.write(`FAILED: ${problem}\n`);
    if (problems.length === 0 && options.writeReadme) {
      await writeReadmeSection('token', `${renderMachine(machine)}\n\n${table}`);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return problems.length === 0 ? 0 : 1;
  } finally {
    await service.close();
  }
}

async function run(
  service: TokenService,
  app: RegisteredApp,
  options: BenchOptions,
): Promise<Results> {
  // --- cache hits ---
  const provider = await newProvider(service, app);
  const msal = newMsal(service, app);
  await provider.getToken();
  await msal.acquireTokenByClientCredential({ scopes: SCOPES });
  const hit = await msal.acquireTokenByClientCredential({ scopes: SCOPES });
  if (!hit?.fromCache) throw new Error('msal-node did not serve its second token from its cache');

  const ours: Subject = { call: () => provider.getToken() };
  const bare: Subject = {
    call: () => msal.acquireTokenByClientCredential({ scopes: SCOPES }),
  };
  const cacheHitTokenRequests = { ours: 0, msal: 0 };
  const counted = async (key: 'ours' | 'msal', work: () => Promise<number>) => {
    const before = service.tokenRequests;
    const value = await work();
    cacheHitTokenRequests[key] += service.tokenRequests - before;
    return value;
  };

  progress('warm-up');
  const warmMs = Math.max(100, options.sampleMs / 2);
  for (const subject of [ours, bare]) {
    const key = subject === ours ? 'ours' : 'msal';
    await counted(key, () => sequentialRate(subject.call, warmMs));
    await counted(key, () => batchRate(subject.call, warmMs));
  }

  const samples = {
    sequential: { ours: [] as number[], msal: [] as number[] },
    batch: { ours: [] as number[], msal: [] as number[] },
  };
  for (let round = 0; round < options.rounds; round++) {
    // Alternate the order so drift (thermal, GC, neighbours) does not favour one side.
    const order = round % 2 === 0 ? [ours, bare] : [bare, ours];
    for (const subject of order) {
      const key = subject === ours ? 'ours' : 'msal';
      samples.sequential[key].push(
        await counted(key, () => sequentialRate(subject.call, options.sampleMs)),
      );
      samples.batch[key].push(await counted(key, () => batchRate(subject.call, options.sampleMs)));
    }
    progress(
      `round ${round + 1}/${options.rounds}: sequential ours ${rate(samples.sequential.ours.at(-1))}, ` +
        `msal-node ${rate(samples.sequential.msal.at(-1))}; batch ours ${rate(samples.batch.ours.at(-1))}, ` +
        `msal-node ${rate(samples.batch.msal.at(-1))}`,
    );
  }

  // --- cold, 1,000 concurrent callers ---
  const cold: Record<ColdScenario, ColdResult> = {
    ours: emptyCold(),
    msalNew: emptyCold(),
    msalResolved: emptyCold(),
  };
  const scenarios = Object.keys(COLD_SCENARIOS) as ColdScenario[];
  for (let round = 0; round < COLD_ROUNDS; round++) {
    // Rotate the order: a burst leaves warm sockets and garbage behind for the next one.
    const order = scenarios.map(
      (_, i) => scenarios[(i + round) % scenarios.length] as ColdScenario,
    );
    for (const scenario of order) {
      const call = await coldCall(scenario, service, app);
      await coldBurst(service, call, cold[scenario]);
    }
    progress(
      `cold round ${round + 1}/${COLD_ROUNDS}: ${scenarios
        .map(
          (scenario) =>
            `${scenario} ${cold[scenario].requests.at(-1)} request(s) in ` +
            `${cold[scenario].elapsedMs.at(-1)?.toFixed(0)} ms`,
        )
        .join(', ')}`,
    );
  }

  return {
    sequential: {
      ours: median(samples.sequential.ours),
      msal: median(samples.sequential.msal),
    },
    batch: { ours: median(samples.batch.ours), msal: median(samples.batch.msal) },
    cacheHitTokenRequests,
    cold,
  };
}

async function newProvider(service: TokenService, app: RegisteredApp): Promise<TokenProvider> {
  const config = await loadConfig({
    env: {
      AZURE_TENANT_ID: app.tenantId,
      AZURE_CLIENT_ID: app.clientId,
      AZURE_CLIENT_SECRET: app.secret ?? '',
      AZURE_AUTHORITY_HOST: service.url,
    },
  });
  return createTokenProvider(config);
}

/**
 * msal-node as an app would use it directly. Its log level is set to Warning,
 * as our provider sets it, so its default (Info) message formatting does not
 * count against it.
 */
function newMsal(service: TokenService, app: RegisteredApp): ConfidentialClientApplication {
  return new ConfidentialClientApplication({
    auth: {
      clientId: app.clientId,
      authority: service.authority(app.tenantId),
      knownAuthorities: [service.host],
      clientSecret: app.secret ?? '',
    },
    system: {
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: MsalLogLevel.Warning,
        loggerCallback: () => {},
      },
    },
  });
}

/** A fresh client for one burst, and the call each of the callers makes. */
async function coldCall(
  scenario: ColdScenario,
  service: TokenService,
  app: RegisteredApp,
): Promise<() => Promise<string>> {
  if (scenario === 'ours') {
    const provider = await newProvider(service, app);
    return async () => (await provider.getToken()).accessToken;
  }
  const msal = newMsal(service, app);
  if (scenario === 'msalResolved') {
    // A token for another resource makes msal-node fetch and keep the authority's
    // metadata while the Exchange token stays uncached: the state of a client
    // whose token has just expired.
    await msal.acquireTokenByClientCredential({ scopes: [OTHER_SCOPE] });
  }
  return async () => {
    const result = await msal.acquireTokenByClientCredential({ scopes: SCOPES });
    return result?.accessToken ?? '';
  };
}

function emptyCold(): ColdResult {
  return { requests: [], metadata: [], distinctTokens: [], failures: [], elapsedMs: [] };
}

async function coldBurst(
  service: TokenService,
  call: () => Promise<string>,
  into: ColdResult,
): Promise<void> {
  const tokensBefore = service.tokenRequests;
  const metadataBefore = service.metadataRequests;
  service.delayNext(CALLERS, COLD_DELAY_MS);
  const started = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: CALLERS }, () => call()));
  into.elapsedMs.push(performance.now() - started);
  service.clearFaults();
  into.requests.push(service.tokenRequests - tokensBefore);
  into.metadata.push(service.metadataRequests - metadataBefore);
  const tokens = new Set<string>();
  let failures = 0;
  for (const outcome of settled) {
    if (outcome.status === 'fulfilled') tokens.add(outcome.value);
    else failures++;
  }
  into.distinctTokens.push(tokens.size);
  into.failures.push(failures);
}

/** Latency-bound: each call awaited before the next starts. */
async function sequentialRate(call: () => Promise<unknown>, ms: number): Promise<number> {
  let calls = 0;
  const started = performance.now();
  const deadline = started + ms;
  let now = started;
  do {
    for (let i = 0; i < CHUNK; i++) await call();
    calls += CHUNK;
    now = performance.now();
  } while (now < deadline);
  return calls / ((now - started) / 1000);
}

/** Throughput-bound: CALLERS calls started together, awaited together, repeated. */
async function batchRate(call: () => Promise<unknown>, ms: number): Promise<number> {
  let calls = 0;
  const started = performance.now();
  const deadline = started + ms;
  let now = started;
  do {
    await Promise.all(Array.from({ length: CALLERS }, () => call()));
    calls += CALLERS;
    now = performance.now();
  } while (now < deadline);
  return calls / ((now - started) / 1000);
}

function check(results: Results): string[] {
  const problems: string[] = [];
  for (const [key, count] of Object.entries(results.cacheHitTokenRequests)) {
    if (count !== 0) {
      problems.push(`${key}: ${count} token request(s) reached the service during cache-hit runs`);
    }
  }
  const { ours } = results.cold;
  if (ours.requests.some((count) => count !== 1)) {
    problems.push(
      `${CALLERS} concurrent callers on a cold provider made ${ours.requests.join(', ')} token request(s), not 1`,
    );
  }
  if (ours.failures.some((count) => count > 0)) {
    problems.push(`cold getToken() calls failed: ${ours.failures.join(', ')} per round`);
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Output

interface MachineInfo {
  cpu: string;
  cores: number;
  node: string;
  msal: string;
  platform: string;
  date: string;
}

function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    node: process.version,
    msal: msalVersion,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    date: new Date().toISOString().slice(0, 10),
  };
}

function renderMachine(machine: MachineInfo): string {
  return [
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.platform}`,
    `Node ${machine.node}, @azure/msal-node ${machine.msal}, run on ${machine.date}`,
  ].join('  \n');
}

function renderTable(results: Results, options: BenchOptions): string {
  const { sequential, batch, cold } = results;
  const n = CALLERS.toLocaleString('en-US');
  const cacheHits = markdownTable(
    [
      'Cache hit',
      'ours: `getToken()`',
      'msal-node: `acquireTokenByClientCredential`',
      'ours / msal-node',
    ],
    [
      [
        `Awaited one after another (calls/s, median of ${options.rounds})`,
        rate(sequential.ours),
        rate(sequential.msal),
        ratio(sequential.ours, sequential.msal),
      ],
      [
        `Batches of ${n} concurrent calls (calls/s, median of ${options.rounds})`,
        rate(batch.ours),
        rate(batch.msal),
        ratio(batch.ours, batch.msal),
      ],
      [
        'Token endpoint requests during these runs (warm-up included)',
        String(results.cacheHitTokenRequests.ours),
        String(results.cacheHitTokenRequests.msal),
        '',
      ],
    ],
  );
  const burst = markdownTable(
    [
      `${n} concurrent callers, nothing cached (${COLD_ROUNDS} rounds)`,
      'token endpoint requests',
      'openid-configuration requests',
      'distinct tokens',
      'failed calls',
      'ms until all served (median)',
    ],
    (Object.keys(COLD_SCENARIOS) as ColdScenario[]).map((scenario) => {
      const result = cold[scenario];
      return [
        COLD_SCENARIOS[scenario],
        counts(result.requests),
        counts(result.metadata),
        counts(result.distinctTokens),
        counts(result.failures),
        median(result.elapsedMs).toFixed(0),
      ];
    }),
  );
  return `${cacheHits}\n\n${burst}\n\nThe token service holds every token request ${COLD_DELAY_MS} ms before answering, so the callers overlap.`;
}

const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function rate(value: number | undefined): string {
  return value === undefined ? '-' : numberFormat.format(value);
}

function ratio(ours: number, msal: number): string {
  return `${(ours / msal).toFixed(1)}×`;
}

const progress = progressLogger('token');

// ---------------------------------------------------------------------------

runBench('token', parseOptions, measure);
