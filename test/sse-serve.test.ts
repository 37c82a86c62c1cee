/**
 * `pgnotify serve` without a browser, durable on a journal schema of this file's own
 * (`--durable --schema`): the page, the token on every other route, /status (the listener's
 * state and every field of the bridge's stats), a notification sent through POST /notify
 * written to that journal and arriving on /events with its cursor as id, a resume with
 * Last-Event-ID, and `--schema` without `--durable` refused. The page itself, on plain
 * channels, is exercised in Chromium by test/sse-browser.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertExit, runCli } from './helpers/cli.js';
import { databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';
import { journalFixture, readAll } from './helpers/journal.js';
import { RawSse } from './helpers/sse.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { schema, pool } = journalFixture('serve', 1);

describe('pgnotify serve', () => {
  test('page, token, status, durable notify → events in --schema, resume, and a clean SIGTERM', async () => {
    const ch = uniqueChannel('serve');
    // Exits before connecting: runs alongside the server's start-up.
    const withoutDurable = runCli(['serve', '--port', '0', '--schema', schema]);
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
        '--durable',
        '--schema',
        schema,
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
      assert.equal(status.durable, true);
      assert.equal(status.schema, schema);
      assert.deepEqual(Object.keys(status).sort(), [
        'channels',
        'clients',
        'durable',
        'events',
        'liveChannels',
        'pausedClients',
        'pid',
        'reconnects',
        'schema',
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
      const refused = await RawSse.openToEnd(port, `/events?channel=${ch}`);
      assert.equal(refused.status, 401);
      const other = await RawSse.openToEnd(port, '/events?channel=other&token=s3cret');
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
      const [open, n] = await events.waitEvents(2);
      assert.match(open?.id ?? '', /^\d{19}-\d{19}$/, "a cursor of --schema's journal");
      assert.deepEqual(JSON.parse(n?.data ?? '').payload, { hello: 'inspector' });
      const rows = await readAll(pool, schema, 'start', { channels: [ch] });
      assert.deepEqual(
        rows.map((row) => [row.cursor, row.payload]),
        [[n?.id, '{"hello":"inspector"}']],
        "POST /notify wrote a row of --schema's journal; its cursor is the event's id",
      );
      // Durable streams have a subscription each: no shared live channel.
      assert.deepEqual(bridgeStats(await getStatus()), [1, 0, 1, 0, 0], 'the bridge stats');

      events.close();
      await waitFor(async () => (await getStatus()).clients === 0);
      assert.equal((await post({ channel: ch, payload: 'missed' })).status, 202);
      const resumed = await RawSse.open(port, `/events?channel=${ch}&token=s3cret`, {
        'Last-Event-ID': n?.id as string,
      });
      const [, missed] = await resumed.waitEvents(2);
      assert.equal(JSON.parse(missed?.data ?? '').payload, 'missed');

      assertExit(await withoutDurable, 2, 'serve --schema without --durable');
      assert.match((await withoutDurable).stderr, /--schema needs --durable/);

      child.kill('SIGTERM');
      await waitFor(() => resumed.ended, { message: 'the stream to end on SIGTERM' });
      const ending = resumed.events.at(-1);
      assert.equal(JSON.parse(ending?.data ?? '').reason, 'shutdown');
      assert.deepEqual(
        resumed.events.filter((e) => e.event === 'message' && e.data !== '').length,
        1,
        'exactly the missed event, no duplicate',
      );
      assert.equal(await exited, 143, stderr);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
