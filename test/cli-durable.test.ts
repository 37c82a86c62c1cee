/**
 * The durable side of the `pgnotify` command, driven as a user would (spawned processes against
 * this pass's server, in a journal schema of this file's own): `notify --durable [--schema]`, and
 * `doctor`'s journal and mode checks, directly and through a real PgBouncer in transaction
 * pooling mode (skipped, with a SKIP line, where pgbouncer is not installed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { saveCursor } from '../src/journal.js';
import { appendDurableBatch } from '../src/journal-write.js';
import { assertExit, runCli } from './helpers/cli.js';
import { databaseUrl, uniqueChannel } from './helpers/db.js';
import { journalFixture, readAll, uniqueSchema } from './helpers/journal.js';
import { type PgBouncer, pgbouncerMissing, startPgBouncer } from './helpers/pgbouncer.js';

const { schema, pool } = journalFixture('clid');

async function payloads(channel: string): Promise<string[]> {
  return (await readAll(pool, schema, 'start', { channels: [channel] })).map((r) => r.payload);
}

describe('pgnotify notify --durable', () => {
  test('an argument and stdin lines become journal rows, in order, duplicates kept, past 8000 bytes', async () => {
    const channel = uniqueChannel('cli_dur');
    const one = await runCli(['notify', '--durable', '--schema', schema, channel, 'first']);
    assertExit(one, 0, 'notify --durable with a payload');
    assert.match(one.stderr, /sent 1 durable message on/);
    const big = 'b'.repeat(20_000);
    const lines = ['a', 'dup', 'dup', '', big, 'z'];
    const many = await runCli(['notify', '--durable', '--schema', schema, channel], {
      input: `${lines.join('\n')}\n`,
    });
    assertExit(many, 0, 'notify --durable from stdin');
    assert.match(many.stderr, /sent 6 durable messages/);
    assert.deepEqual(await payloads(channel), ['first', ...lines]);
    // The same 20 000-byte line as a plain notification is refused (exit 2).
    const plain = await runCli(['notify', channel, big]);
    assertExit(plain, 2, 'a plain payload of 20 000 bytes');
    assert.match(plain.stderr, /PGNOTIFY_PAYLOAD_TOO_LARGE/);
  });

  test('--json compacts; a journal not installed exits 3 naming pgnotify setup; --schema needs --durable', async () => {
    const channel = uniqueChannel('cli_dur');
    const json = await runCli(['notify', '--durable', '--json', '--schema', schema, channel], {
      input: '{ "id": 1 }\n\nnot json\n{"id":2}\n',
    });
    assertExit(json, 2, 'a refused line');
    assert.match(json.stderr, /line 3: /);
    assert.deepEqual(await payloads(channel), ['{"id":1}', '{"id":2}']);

    const missing = uniqueSchema('none');
    const none = await runCli(['notify', '--durable', '--schema', missing, channel, 'x']);
    assertExit(none, 3, 'durable notify into a missing journal');
    assert.match(none.stderr, /PGNOTIFY_SCHEMA_MISSING.*pgnotify setup/);
    const bad = await runCli(['notify', '--schema', schema, channel, 'x']);
    assertExit(bad, 2, '--schema without --durable');
    const badName = await runCli(['notify', '--durable', '--schema', '', channel, 'x']);
    assertExit(badName, 2, 'an empty schema name');
  });
});

describe('pgnotify doctor: durable checks', () => {
  test('an installed journal: version, rows, head cursor, consumers and their lag; mode listen', async () => {
    const channel = uniqueChannel('cli_doc');
    await appendDurableBatch(pool, channel, ['1', '2', '3'], schema);
    const [first] = await readAll(pool, schema, 'start', { channels: [channel] });
    await saveCursor(pool, 'billing', first?.cursor as string, { schema });
    await appendDurableBatch(pool, channel, ['4'], schema);
    const outcome = await runCli(['doctor', '--schema', schema]);
    assertExit(outcome, 0, 'doctor on an installed journal');
    assert.match(
      outcome.stdout,
      /^ok\s+durable journal\s+schema "[^"]+" version \d+: \d+ rows?, head cursor \d{19}-\d{19}, wake-up channel/m,
    );
    assert.match(
      outcome.stdout,
      /^ok\s+durable consumers\s+"billing" lag [1-9]\d* commits? at \d{19}-/m,
    );
    assert.match(outcome.stdout, /^ok\s+durable mode\s+listen: /m);
    assert.match(outcome.stdout, /^verdict: ready/m);
  });

  test('a journal asked for and missing fails with the fix; unasked, plain users are not bothered', async () => {
    const missing = uniqueSchema('none');
    const asked = await runCli(['doctor', '--schema', missing]);
    assertExit(asked, 1, 'doctor --schema on a missing journal');
    assert.match(
      asked.stdout,
      new RegExp(
        `^fail\\s+durable journal\\s+not installed in schema "${missing}": .*pgnotify setup --schema ${missing}`,
        'm',
      ),
    );
    const plain = await runCli(['doctor']);
    assert.match(
      plain.stdout,
      /^ok\s+durable journal\s+(not installed in schema "pgnotify": only durable channels|schema "pgnotify" version)/m,
    );
  });

  const noBouncer = pgbouncerMissing();
  if (noBouncer !== undefined) process.stdout.write(`SKIP cli-durable pgbouncer: ${noBouncer}\n`);

  describe('through PgBouncer in transaction mode', { skip: noBouncer }, () => {
    let bouncer: PgBouncer;
    before(async () => {
      bouncer = await startPgBouncer({ targetUrl: databaseUrl(), poolMode: 'transaction' });
    });
    after(async () => {
      await bouncer?.stop();
    });

    test('doctor says poll (LISTEN never delivers there) and still reads the journal', async () => {
      const outcome = await runCli(['doctor', '--schema', schema, '--timeout', '1500'], {
        url: bouncer.url,
      });
      assertExit(outcome, 1, 'doctor through PgBouncer (the LISTEN round trip fails)');
      assert.match(
        outcome.stdout,
        /^warn\s+durable mode\s+poll: LISTEN does not deliver on this path.*mode: 'poll'/m,
      );
      assert.match(outcome.stdout, /^ok\s+durable journal\s+schema "[^"]+" version \d+/m);
      assert.match(outcome.stdout, /^fail\s+LISTEN\/NOTIFY round trip/m);
      // Durable notify works through it: the journal is plain SQL.
      const channel = uniqueChannel('cli_bnc');
      const sent = await runCli(['notify', '--durable', '--schema', schema, channel], {
        input: 'p1\np2\n',
        url: bouncer.url,
      });
      assertExit(sent, 0, 'notify --durable through PgBouncer');
      assert.deepEqual(await payloads(channel), ['p1', 'p2']);
    });
  });
});
