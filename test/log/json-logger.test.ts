import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createJsonLogger } from '../../src/log/json-logger.js';

function capture() {
  const stream = new PassThrough();
  const writes: string[] = [];
  stream.on('data', (chunk: Buffer) => writes.push(chunk.toString('utf8')));
  return { stream, writes };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('createJsonLogger', () => {
  it('writes the lines of one turn in order, in one write', async () => {
    const { stream, writes } = capture();
    const logger = createJsonLogger(stream, { now: () => new Date(0) });
    logger.log('info', 'accepted', { id: 'a' });
    logger.log('info', 'delivered', { id: 'a', ms: 3 });
    logger.log('debug', 'hidden');
    await nextTurn();
    await nextTurn();
    expect(writes).toHaveLength(1);
    expect(
      writes[0]
        ?.split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { time: '1970-01-01T00:00:00.000Z', level: 'info', msg: 'accepted', id: 'a' },
      { time: '1970-01-01T00:00:00.000Z', level: 'info', msg: 'delivered', id: 'a', ms: 3 },
    ]);
    logger.log('info', 'queued');
    logger.log('warn', 'at once');
    await new Promise((resolve) => process.nextTick(resolve));
    expect(writes).toHaveLength(2);
    expect(writes[1]).toMatch(/"queued".*\n.*"at once"/s);
  });

  it('never lets a field replace time, level or msg', async () => {
    const { stream, writes } = capture();
    createJsonLogger(stream).log('info', 'real', {
      msg: 'forged',
      level: 'debug',
      extra: undefined,
    });
    await nextTurn();
    expect(JSON.parse(writes.join(''))).toMatchObject({ msg: 'real', level: 'info' });
    expect(writes.join('')).not.toContain('extra');
  });

  it('writes what is still buffered when the process exits', () => {
    const moduleUrl = new URL('../../dist/log/json-logger.js', import.meta.url).href;
    const script = `import { createJsonLogger } from ${JSON.stringify(moduleUrl)};
      const logger = createJsonLogger(process.stdout);
      logger.log('info', 'first'); logger.log('error', 'last words'); process.exit(3);`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(run.status).toBe(3);
    expect(
      run.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).msg),
    ).toEqual(['first', 'last words']);
  });
});
