/**
 * A real PgBouncer for tests, in front of this pass's server:
 *
 *   const reason = pgbouncerMissing();              // a SKIP reason, or undefined
 *   const bouncer = await startPgBouncer({ targetUrl: databaseUrl() });
 *   const pool = new pg.Pool({ connectionString: bouncer.url });
 *   await bouncer.stop();
 *
 * Transaction pooling by default, on a free port of 127.0.0.1, with its ini and userlist in a
 * temporary directory (auth_type trust; the userlist carries the URL's user and password, which
 * PgBouncer passes on when the server asks). PgBouncer refuses to run as root, so as root it is
 * started with `-u nobody`. Install it with `.ci/install-debs.sh` (Debian package `pgbouncer`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A running PgBouncer. */
export interface PgBouncer extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** The target URL with host and port replaced by PgBouncer's. */
  readonly url: string;
  /** What it printed so far (its log goes to stderr). */
  readonly log: () => string;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startPgBouncer}. */
export interface PgBouncerOptions {
  /** The server to pool, as a postgres:// URL (its database, user and password are used). */
  targetUrl: string;
  /** Default 'transaction'. */
  poolMode?: 'transaction' | 'session' | 'statement';
  /** Server connections per (database, user). Default 2. */
  poolSize?: number;
}

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/** The pgbouncer executable, or undefined when it is not installed. */
export function pgbouncerPath(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const file of [...dirs.map((d) => path.join(d, 'pgbouncer')), ...CANDIDATES]) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why PgBouncer tests cannot run here (a visible SKIP reason), or undefined when they can. */
export function pgbouncerMissing(): string | undefined {
  return pgbouncerPath() === undefined
    ? 'pgbouncer is not installed (Debian: apt-get install pgbouncer; CI: .ci/install-debs.sh)'
    : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
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
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** Starts PgBouncer and resolves once it accepts connections (rejects with its log after 10 s). */
export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  const binary = pgbouncerPath();
  if (binary === undefined) throw new Error(pgbouncerMissing());
  const target = new URL(options.targetUrl);
  const user = decodeURIComponent(target.username || process.env.USER || 'postgres');
  const password = decodeURIComponent(target.password);
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'pgnotify-pgbouncer-'));
  // Readable by the unprivileged user PgBouncer switches to when started as root.
  chmodSync(dir, 0o755);
  const userlist = path.join(dir, 'userlist.txt');
  writeFileSync(userlist, `${quote(user)} ${quote(password)}\n`, { mode: 0o644 });
  const ini = path.join(dir, 'pgbouncer.ini');
  const host =
    target.hostname === '' || target.hostname === 'localhost' ? '127.0.0.1' : target.hostname;
  writeFileSync(
    ini,
    `[databases]
* = host=${host} port=${target.port || '5432'}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${userlist}
pool_mode = ${options.poolMode ?? 'transaction'}
default_pool_size = ${options.poolSize ?? 2}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile =
pidfile =
`,
    { mode: 0o644 },
  );
  const args = process.getuid?.() === 0 ? ['-u', 'nobody', ini] : [ini];
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    log += c;
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    log += c;
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.on('exit', () => {
      exited = true;
      resolve();
    });
    child.on('error', (error) => {
      log += `\nspawn failed: ${error.message}`;
      exited = true;
      resolve();
    });
  });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`pgbouncer did not start on port ${port}:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const url = new URL(options.targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    port,
    url: url.toString(),
    log: () => log,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
