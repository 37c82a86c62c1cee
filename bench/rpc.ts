/**
 * Request/response over IPC with a forked bench child (the bulk sender, and one process per
 * contestant). The child says `{ ready: true }` (or `{ ready: false, error }`) once set up,
 * then answers every `{ id, ...request }` with `{ id, ok: true, result }` or
 * `{ id, ok: false, error }`.
 */
import { type ChildProcess, fork } from 'node:child_process';

interface Reply {
  id?: number;
  ok?: boolean;
  ready?: boolean;
  result?: unknown;
  error?: string;
}

export class Rpc {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve(result: unknown): void; reject(error: Error): void }
  >();

  private constructor(
    private readonly child: ChildProcess,
    what: string,
  ) {
    child.on('message', (message: Reply) => {
      if (message.id === undefined) return;
      const waiter = this.pending.get(message.id);
      if (waiter === undefined) return;
      this.pending.delete(message.id);
      if (message.ok === true) waiter.resolve(message.result);
      else waiter.reject(new Error(`${what}: ${message.error ?? 'failed'}`));
    });
    child.on('exit', (code, signal) => {
      for (const waiter of this.pending.values()) {
        waiter.reject(new Error(`${what} exited (code ${code}, signal ${signal})`));
      }
      this.pending.clear();
    });
  }

  /** Forks `script` (TypeScript, through tsx) and waits until it says it is ready. */
  static async start(
    script: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    what: string,
  ): Promise<Rpc> {
    const child = fork(script, args, {
      // PGNOTIFY_BENCH_CHILD_ARGS: extra node flags for the children, e.g. "--cpu-prof".
      execArgv: ['--import', 'tsx', ...(process.env.PGNOTIFY_BENCH_CHILD_ARGS?.split(' ') ?? [])],
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: Reply): void => {
        if (message.ready === undefined) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (message.ready) resolve();
        else reject(new Error(`${what} could not start: ${message.error ?? '?'}`));
      };
      const onExit = (code: number | null): void =>
        reject(new Error(`${what} exited during startup (code ${code})`));
      child.on('message', onMessage);
      child.on('exit', onExit);
    });
    return new Rpc(child, what);
  }

  /** Sends one request; resolves with the child's result. */
  request<T>(body: Record<string, unknown>): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
      this.child.send({ ...body, id });
    });
  }

  /** Disconnects the child (it cleans up and exits) and waits for its exit. */
  async close(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function reply(message: Reply): void {
  if (process.connected) process.send?.(message);
}

/**
 * The child's side: runs `setup`, says ready, then answers requests with `handle`.
 * `cleanup` runs when the parent disconnects.
 */
export async function serve<R>(
  setup: () => Promise<unknown>,
  handle: (request: R) => Promise<unknown>,
  cleanup: () => Promise<unknown>,
): Promise<void> {
  process.on('message', (message: R & { id: number }) => {
    handle(message).then(
      (result) => reply({ id: message.id, ok: true, result }),
      (error: unknown) => reply({ id: message.id, ok: false, error: errorMessage(error) }),
    );
  });
  // The parent went away (finished or crashed): clean up and let the loop drain.
  process.on('disconnect', () => {
    void cleanup().catch(() => undefined);
  });
  try {
    await setup();
    reply({ ready: true });
  } catch (error) {
    reply({ ready: false, error: errorMessage(error) });
    process.disconnect?.();
  }
}
