/**
 * `pgnotify serve` without a browser: the page, the token on every other route, /status (the
 * listener's state and every field of the bridge's stats), and a notification sent through
 * POST /notify arriving on /events. The page itself is exercised in Chromium by
 * test/sse-browser.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';
import { RawSse } from './helpers/sse.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('pgnotify serve', () => {
  test('page, token, status, notify → events, and a clean SIGTERM', async () => {
    const ch = uniqueChannel('serve');
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl() };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--port',
        '0',
        '--channel',
        ch,
        '--token',
        's3cret',
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    try {
      const base = await waitFor(() => /serving (http:\/\/\S+)\//.exec(stderr)?.[1], {
        timeoutMs: 15_000,
        message: `pgnotify serve to start; stderr: ${stderr}`,
      });
      assert.match(stderr, /token required/);
      const page = await fetch(`${base}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>pgnotify inspector<\/title>/);

      const auth = { Authorization: 'Bearer s3cret' };
      assert.equal((await fetch(`${base}/status`)).status, 401);
      const getStatus = async (): Promise<Record<string, unknown>> =>
        (await (await fetch(`${base}/status`, { headers: auth })).json()) as Record<
          string,
          unknown
        >;
      const status = await getStatus();
      assert.equal(status.state, 'listening');
      assert.deepEqual(status.channels, [ch]);
      assert.deepEqual(Object.keys(status).sort(), [
        'channels',
        'clients',
        'durable',
        'events',
        'liveChannels',
        'pausedClients',
        'pid',
        'reconnects',
        'slowClients',
        'state',
      ]);
      const bridgeStats = (s: Record<string, unknown>) => [
        s.clients,
        s.liveChannels,
        s.events,
        s.slowClients,
        s.pausedClients,
      ];
      assert.deepEqual(bridgeStats(status), [0, 0, 0, 0, 0]);

      const port = Number(new URL(base).port);
      const refused = await RawSse.open(port, `/events?channel=${ch}`);
      await waitFor(() => refused.ended);
      assert.equal(refused.status, 401);
      const other = await RawSse.open(port, '/events?channel=other&token=s3cret');
      await waitFor(() => other.ended);
      assert.equal(other.status, 403, 'only --channel channels');

      const events = await RawSse.open(port, `/events?channel=${ch}&token=s3cret`);
      assert.equal(events.status, 200);
      await waitFor(() => events.body.includes('retry:'));
      const post = (body: unknown, headers: Record<string, string> = auth): Promise<Response> =>
        fetch(`${base}/notify`, { method: 'POST', headers, body: JSON.stringify(body) });
      assert.equal((await post({ channel: ch, payload: 'x' }, {})).status, 401);
      assert.equal((await post({ channel: 'other', payload: 'x' })).status, 403);
      assert.equal((await post({ nope: 1 })).status, 400);
      const sent = await post({ channel: ch, payload: '{"hello":"inspector"}' });
      assert.equal(sent.status, 202);
      const [, n] = await events.waitEvents(2);
      assert.deepEqual(JSON.parse(n?.data ?? '').payload, { hello: 'inspector' });
      assert.deepEqual(bridgeStats(await getStatus()), [1, 1, 1, 0, 0], 'the bridge stats');

      child.kill('SIGTERM');
      await waitFor(() => events.ended, { message: 'the stream to end on SIGTERM' });
      assert.equal(JSON.parse(events.events.at(-1)?.data ?? '').reason, 'shutdown');
      assert.equal(await exited, 143, stderr);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
