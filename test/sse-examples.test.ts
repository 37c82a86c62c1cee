/**
 * The bridge's examples (examples/sse-*.ts) run against this pass's server: each is started,
 * a raw client connects to the URL it prints and receives one notification, then SIGTERM
 * must end it cleanly (exit 0) after telling its clients to reconnect.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { databaseUrl, uniqueChannel, waitFor, withAdmin } from './helpers/db.js';
import { RawSse } from './helpers/sse.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function runExample(name: string, headers: Record<string, string> = {}): Promise<void> {
  const channel = uniqueChannel(name);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl(),
    PORT: '0',
    SSE_CHANNEL: channel,
  };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}.ts`], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = new URL(
      await waitFor(() => /listening on (http:\/\/\S+)/.exec(out)?.[1], {
        timeoutMs: 20_000,
        message: `examples/${name}.ts to listen; output: ${out}`,
      }),
    );
    const client = await RawSse.open(Number(url.port), url.pathname + url.search, headers);
    assert.equal(client.status, 200, `${client.head}\n${client.body}`);
    await waitFor(() => client.body.includes('retry:'));
    await withAdmin((admin) => admin.query('select pg_notify($1, $2)', [channel, '{"id":7}']));
    const [, event] = await client.waitEvents(2);
    assert.deepEqual(JSON.parse(event?.data ?? ''), {
      ...JSON.parse(event?.data ?? ''),
      channel,
      payload: { id: 7 },
    });
    child.kill('SIGTERM');
    await waitFor(() => client.ended, { message: 'the stream to end on shutdown' });
    assert.equal(JSON.parse(client.events.at(-1)?.data ?? '').reason, 'shutdown');
    assert.equal(await exited, 0, out);
    assert.equal(out.trim().split('\n').length, 1, `nothing but the listening line: ${out}`);
  } finally {
    child.kill('SIGKILL');
  }
}

describe('SSE examples run and serve one notification', () => {
  test('node:http', () => runExample('sse-node-http'));
  test('Express', () => runExample('sse-express', { Authorization: 'Bearer demo' }));
  test('Fastify', () => runExample('sse-fastify'));
  test('Hono (fetch form)', () => runExample('sse-hono'));
});
