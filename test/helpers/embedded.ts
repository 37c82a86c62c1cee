/**
 * Throwaway PostgreSQL servers for the test runner (test/run.ts), the private servers of the
 * fault tests (test/helpers/server.ts) and the benchmark: the same implementation as
 * `pgnotify demo`'s, in src/cli/embedded.ts.
 */
export {
  createEmbeddedServer,
  EMBEDDED_PASSWORD,
  EMBEDDED_USER,
  type EmbeddedServer,
  type EmbeddedServerOptions,
  freePort,
  installExitCleanup,
  loadEmbeddedPostgres,
} from '../../src/cli/embedded.js';
