/**
 * A password file for an `imaps://` side of `migrate` that its group or all
 * users may read gives the mailbox away: the command warns (it still runs,
 * as it does for a config file holding a secret), naming the file and the
 * remedy, never the password.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { password } from '../../src/cli/commands/migrate.js';

const SECRET = 'correct horse battery staple';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-password-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readWith(mode: number, flag = true): Promise<{ value: string; stderr: string }> {
  const file = join(dir, `password-${mode.toString(8)}`);
  await writeFile(file, `${SECRET}\n`);
  await chmod(file, mode);
  const stderr = new PassThrough();
  let text = '';
  stderr.on('data', (chunk) => {
    text += chunk;
  });
  const io = { stdout: new PassThrough(), stderr, env: {} };
  const value = flag
    ? await password('from', { 'from-password-file': file }, {}, io)
    : await password('to', {}, { toPasswordFile: file }, io);
  return { value, stderr: text };
}

describe('migrate password files', () => {
  it('warns when all users may read one, naming the file and chmod, never the password', async () => {
    const { value, stderr } = await readWith(0o644);
    expect(value).toBe(SECRET);
    expect(stderr).toMatch(
      /^mailbridge: warning: --from-password-file \S+password-644 holds a password and can be read by its group and all users \(mode 0644\): run chmod 600 on it\.\n$/,
    );
    expect(stderr).not.toContain('horse');
  });

  it("warns for the config section's file too, and for a group-readable one", async () => {
    const { stderr } = await readWith(0o640, false);
    expect(stderr).toContain('migrate.toPasswordFile');
    expect(stderr).toContain('can be read by its group (mode 0640)');
  });

  it('says nothing when only its owner may read it', async () => {
    const { value, stderr } = await readWith(0o600);
    expect(value).toBe(SECRET);
    expect(stderr).toBe('');
  });
});
