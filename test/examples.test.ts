/**
 * Every program under examples/ (one per seed library's README) runs against this pass's server:
 * it must exit 0 by itself within 30 s and print what its seed library would have shown.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runScript } from './helpers/script.js';

/** Asserts a clean exit and returns the output lines. */
async function runClean(name: string): Promise<string[]> {
  const out = await runScript(`examples/${name}.ts`, [], 30_000);
  const context = `\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`;
  assert.equal(out.timedOut, false, `examples/${name}.ts did not exit within 30 000 ms${context}`);
  assert.equal(out.code, 0, `examples/${name}.ts exited with ${out.code ?? out.signal}${context}`);
  assert.equal(out.stderr.trim(), '', `examples/${name}.ts reported errors${context}`);
  return out.stdout.split('\n').filter((l) => l !== '');
}

/** Index of the first line matching `pattern`, failing when there is none. */
function indexOf(lines: string[], pattern: RegExp, from = 0): number {
  const at = lines.findIndex((line, i) => i >= from && pattern.test(line));
  assert.ok(at >= 0, `no line matching ${pattern} (from line ${from}) in:\n${lines.join('\n')}`);
  return at;
}

function count(lines: string[], pattern: RegExp): number {
  return lines.filter((line) => pattern.test(line)).length;
}

describe('examples run and exit by themselves', () => {
  test('pgnotifier: ids, native payloads, mute/unmute, snapshots', async () => {
    const lines = await runClean('pgnotifier');
    const muted = indexOf(lines, /^--- ch1 muted, an_id muted on ch2$/);
    const unmuted = indexOf(lines, /^--- unmuted/);
    const first = lines.slice(0, muted);
    const whileMuted = lines.slice(muted, unmuted);
    const last = lines.slice(unmuted);
    // Payload text turned into native values, as ast.literal_eval did.
    indexOf(first, /^id: 42, ch1_\d+: string "WARNING: Something really bad happened" pid \d+$/);
    indexOf(first, /^id: 42, ch1_\d+: object \{"topic":"abc","data":"some data"/);
    indexOf(first, /^id: 2:another_id, doing something with key: data -> val \[2,"stuff"\]$/);
    indexOf(first, /^id: 2:another_id, payload of type array is not what I expected!$/);
    assert.equal(count(first, /^id: an_id, /), 2);
    assert.equal(count(first, /^id: late/), 0, 'ch3 had no subscriber yet');
    // Snapshots show the mute flags, and muted subscribers/channels hear nothing.
    indexOf(lines, /^channel ch1_\d+ \(muted\): active=false, subscribers: 42$/);
    indexOf(lines, /^channel ch2_\d+: active=true, subscribers: an_id \(muted\), 2:another_id$/);
    indexOf(lines, /^subscriber an_id: ch2_\d+ \(muted\)$/);
    assert.equal(count(whileMuted, /^id: (42|an_id),/), 0, whileMuted.join('\n'));
    assert.equal(count(whileMuted, /^id: 2:another_id,/), 4, whileMuted.join('\n'));
    // Unmuted again, one subscriber removed and one added while running.
    assert.equal(count(last, /^id: 42,/), 2);
    assert.equal(count(last, /^id: an_id,/), 2);
    assert.equal(count(last, /^id: 2:another_id,/), 0);
    indexOf(last, /^id: late, ch3_\d+: array$/);
    assert.equal(lines.at(-1), 'pgnotifier example done');
  });

  test('pgpubsub: get_event, idle ticks, unlisten, guarded echo loop', async () => {
    const lines = await runClean('pgpubsub');
    assert.equal(lines[0], 'get_event: undefined');
    const m1 = indexOf(lines, /^get_event: Notify\(\d+, 'test_\d+', 'message 1'\)$/);
    assert.match(lines[m1 + 1] ?? '', /^get_event: Notify\(\d+, 'test_\d+', 'message 2'\)$/);
    assert.equal(lines[m1 + 2], 'get_event: undefined (no more messages)');
    const event = indexOf(lines, /^event: chan2_\d+ 'after two ticks'$/);
    assert.equal(count(lines.slice(0, event), /^keepalive$/), 2);
    indexOf(lines, /^after unlisten: 'heard', then undefined$/);
    assert.equal(count(lines, /^echo: 'ping \d' from pid \d+, echoing it$/), 3);
    assert.equal(count(lines, /^echo: skipped my own 'echo of ping \d'$/), 3);
    assert.equal(lines.at(-1), 'pgpubsub example done, feed ended: true');
  });

  test('pgnotifpy: custom dispatcher, handlers per action, ill-formed message, decorators', async () => {
    const lines = await runClean('pgnotifpy');
    const hi = indexOf(lines, /^hi John Doe$/);
    const bad = indexOf(lines, /^Ill-formed JSON message :\( \{"action": "new_user"/);
    const none = indexOf(lines, /^no handler: \{"action":"rename_user"/);
    const bye = indexOf(lines, /^bye John Doe$/);
    assert.ok(hi < bad && bad < none && none < bye, 'job messages are routed in arrival order');
    indexOf(lines, /^actions on job_\d+: new_user, delete_user$/);
    // The decorator form: @handles methods registered with register(instance).
    const welcome = indexOf(lines, /^accounts: welcome #7$/);
    assert.match(lines[welcome + 1] ?? '', /^accounts: audit accounts_\d+ #7$/);
    assert.equal(count(lines, /^accounts: audit accounts_\d+ #7$/), 2);
    indexOf(lines, /^unrouted: 2$/);
    assert.equal(lines.at(-1), 'pgnotifpy example done');
  });

  test('classic-pg-listener: factory, background and blocking modes, workers', async () => {
    const lines = await runClean('classic-pg-listener');
    const free = indexOf(lines, /^Main flow is still free!$/);
    for (let i = 1; i <= 8; i++)
      indexOf(lines, new RegExp(`^background: some_channel_\\d+ task ${i}$`), free);
    const max = Number(
      /max in flight (\d+)/.exec(lines[indexOf(lines, /^background: max in flight/)] ?? '')?.[1],
    );
    assert.ok(max >= 1 && max <= 4, `max in flight ${max} exceeds max_workers=4`);
    const joined = indexOf(lines, /^background: joined, state stopped$/);
    const jobs = lines.filter((l) => /^blocking: some_channel_\d+ job \d$/.test(l));
    assert.deepEqual(
      jobs.map((l) => l.slice(-5)),
      ['job 1', 'job 2', 'job 3'],
    );
    const returned = indexOf(
      lines,
      /^blocking: run returned after 3 notifications, state stopped$/,
    );
    assert.ok(joined < returned);
    assert.equal(lines.at(-1), 'classic-pg-listener example done');
  });

  test('pygresql: arg dict callback, timeout callback, drain, stop event', async () => {
    const lines = await runClean('pygresql');
    assert.equal(lines[0], 'callback: timeout (None), nothing arrived');
    const first = indexOf(lines, /^callback: hello #1 event_\d+ 'first' pid \d+$/);
    const second = indexOf(lines, /^callback: hello #2 event_\d+ 'second' pid \d+$/);
    const drained = indexOf(lines, /^drained: 2 received$/);
    const returned = indexOf(lines, /^handler returned: listener stopped, 2 received$/);
    assert.ok(first < second && second < drained && drained < returned);
    assert.equal(lines.at(-1), 'pygresql example done');
  });

  test('quickstart: the README quick start runs as written and stops by itself', async () => {
    const lines = await runClean('quickstart');
    indexOf(lines, /^order 1 total 9\.5 from backend \d+$/);
    assert.equal(lines.at(-1), 'quickstart done');
  });

  test('durable-consumer: the samples of docs/durable.md run as written', async () => {
    const lines = await runClean('durable-consumer');
    assert.deepEqual(lines, [
      'billed 1 2 3',
      'replayed { id: 2 }',
      'replayed { id: 3 }',
      'polled { id: 2 }',
      'durable done',
    ]);
  });

  test('durable-publish: journal rows in call order, never folded, on COMMIT only', async () => {
    const lines = await runClean('durable-publish');
    const rows = lines.filter((line) => /^\d{19}-\d{19} orders /.test(line));
    assert.deepEqual(
      rows.map((line) => JSON.parse(line.split(' ').slice(2).join(' ')).id),
      [1, 1, 3, 4, 5],
      lines.join('\n'),
    );
    indexOf(lines, /^refused: PGNOTIFY_SCHEMA_MISSING$/);
    assert.equal(lines.at(-1), 'durable-publish example done');
  });

  test('api: the samples of docs/api.md run as written', async () => {
    const lines = await runClean('api');
    const expected = [
      /^audit first$/,
      /^poll: undefined$/,
      /^tick: undefined$/,
      /^next: orders \{ id: 3, total: 12 \}$/,
      /^channel audit \{ muted: true, active: false, listening: false \} \[ 'inbox' \]$/,
      /^subscriber inbox \[ 'orders', 'audit' \]$/,
      /^once: 4$/,
      /^resize cat\.png$/,
      /^delete 7$/,
      /^committed: 2$/,
      /^refused: PGNOTIFY_INVALID_CHANNEL$/,
    ];
    let at = 0;
    for (const pattern of expected) at = indexOf(lines, pattern, at) + 1;
    assert.equal(lines.at(-1), 'api example done');
  });

  test('metrics: Prometheus and OpenTelemetry expose the counters after notifications', async () => {
    const lines = await runClean('metrics');
    for (const expected of [
      'onError: PGNOTIFY_HANDLER_FAILED',
      'pgnotify_received_total 2',
      'pgnotify_delivered_total 2',
      'pgnotify_handler_errors_total 1',
      'pgnotify_up 1',
      'pgnotify_errors_total{code="PGNOTIFY_HANDLER_FAILED"} 1',
      'otel pgnotify.notifications.received - 2',
      'otel pgnotify.notifications.delivered - 2',
      'otel pgnotify.notifications.dropped - 0',
      'otel pgnotify.up - 1',
      'otel pgnotify.errors error.code=PGNOTIFY_HANDLER_FAILED 1',
    ]) {
      assert.ok(
        lines.includes(expected),
        `no line ${JSON.stringify(expected)} in:\n${lines.join('\n')}`,
      );
    }
    assert.equal(lines.at(-1), 'metrics example done');
  });
});
