/**
 * The bulk sender, run as a child process (see sender.ts): it executes the statements the
 * bench sends it over IPC on its own connection, so the CPU the sending side spends (pg
 * parsing 100k result rows of `SELECT pg_notify(...) FROM generate_series(...)`) is never
 * counted in the benchmark process's `process.cpuUsage()`.
 */
import pg from 'pg';

interface Request {
  id: number;
  text: string;
  values: unknown[];
}

const client = new pg.Client({
  connectionString: process.env.DATABASE_URL,
  application_name: process.argv[2] ?? 'pgnotify-bench-sender',
});
client.on('error', () => {
  // The failing query reports it.
});

function reply(message: unknown): void {
  if (process.connected) process.send?.(message);
}

process.on('message', (message: Request) => {
  client.query(message.text, message.values).then(
    () => reply({ id: message.id, ok: true }),
    (error: unknown) =>
      reply({
        id: message.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      }),
  );
});

// The parent went away (finished or crashed): close the connection and let the loop drain.
process.on('disconnect', () => {
  void client.end().catch(() => undefined);
});

try {
  await client.connect();
  reply({ ready: true });
} catch (error) {
  reply({ ready: false, error: error instanceof Error ? error.message : String(error) });
  process.disconnect?.();
}
