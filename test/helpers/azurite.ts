/**
 * Azurite (npm `azurite`, Microsoft's Azure Storage emulator) serving Blob
 * Storage over HTTPS on a free loopback port, from a temporary folder of its
 * own, with a certificate from the test CA: clients trust it only through
 * NODE_EXTRA_CA_CERTS, as they would a private CA. It is reached, as a user
 * reaches Azurite, through a connection string with `BlobEndpoint=`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { canConnect, freePorts, waitUntilReady } from '../../src/sandbox/server-readiness.js';
import { signalProcessGroup } from '../../src/util/process.js';
import { issueServerCertificate } from './pki.js';
import { loadTestCa } from './test-ca.js';

/** Azurite's one built-in account and its documented key: public, not a secret. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export interface Azurite {
  /** Path-style endpoint: https://127.0.0.1:PORT/devstoreaccount1. */
  readonly endpoint: string;
  readonly port: number;
  /** What a user sets as AZURE_STORAGE_CONNECTION_STRING for it. */
  readonly connectionString: string;
  readonly dir: string;
  /** Its process, for reading its CPU time from /proc. */
  readonly pid: number | undefined;
  /** The https:// URL of a container (and prefix), as `--out` takes it. */
  url(container: string, prefix?: string): string;
  /** A client of our own, for creating containers and checking blobs. */
  container(name: string): ContainerClient;
  createContainer(name: string): Promise<ContainerClient>;
  /** Azurite's output, for the message of a failing test. */
  log(): string;
  /** Stops Azurite and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /**
   * Also accept Entra bearer tokens (`--oauth basic`): Azurite checks their
   * issuer (`https://sts.windows.net/…`, as the token service's), audience
   * (`https://storage.azure.com`) and lifetime, not their signature.
   */
  oauth?: boolean;
  /**
   * Keep blobs and their index in memory only (`--inMemoryPersistence`):
   * for tests that never restart it, since persisting its index after every
   * write costs it CPU that grows with the blobs it holds.
   */
  inMemory?: boolean;
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<Azurite> {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-azurite-'));
  const data = join(dir, 'data');
  mkdirSync(data);
  const tls = issueServerCertificate(loadTestCa());
  writeFileSync(join(dir, 'cert.pem'), tls.certificatePem);
  writeFileSync(join(dir, 'key.pem'), tls.keys.privateKeyPem, { mode: 0o600 });
  const logFile = join(dir, 'azurite.log');
  const [port = 0] = await freePorts(1);
  const main = join(
    dirname(createRequire(import.meta.url).resolve('azurite/package.json')),
    'dist/src/blob/main.js',
  );
  const output = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [
        main,
        '--blobHost',
        '127.0.0.1',
        '--blobPort',
        String(port),
        ...(options.inMemory ? ['--inMemoryPersistence'] : ['--location', data]),
        '--cert',
        join(dir, 'cert.pem'),
        '--key',
        join(dir, 'key.pem'),
        // Azurite reports telemetry to Microsoft unless told not to; tests reach nothing outside.
        '--disableTelemetry',
        // The SDK may speak a newer service version than this Azurite knows.
        '--skipApiVersionCheck',
        ...(options.oauth ? ['--oauth', 'basic'] : []),
      ],
      { detached: true, stdio: ['ignore', output, output], env: { PATH: process.env.PATH ?? '' } },
    );
  } finally {
    closeSync(output);
  }
  child.on('error', () => {});
  const onExit = () => signalProcessGroup(child, 'SIGKILL');
  process.on('exit', onExit);
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      signalProcessGroup(child, 'SIGTERM');
      const timer = setTimeout(() => signalProcessGroup(child, 'SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(child, 'azurite', () => canConnect(port), READY_TIMEOUT_MS);
  } catch (error) {
    const text = log();
    await stop();
    if (error instanceof Error) error.message += `\n--- azurite ---\n${text}`;
    throw error;
  }
  const endpoint = `https://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const connectionString = `DefaultEndpointsProtocol=https;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`;
  const service = BlobServiceClient.fromConnectionString(connectionString);
  return {
    endpoint,
    port,
    connectionString,
    dir,
    pid: child.pid,
    url: (container, prefix) => `${endpoint}/${container}${prefix ? `/${prefix}` : ''}`,
    container: (name) => service.getContainerClient(name),
    async createContainer(name) {
      const container = service.getContainerClient(name);
      await container.create();
      return container;
    },
    log,
    stop,
  };
}
