/**
 * The `pgnotify` command run to completion in a child process (`src/cli/main.ts` under tsx),
 * for tests that drive it as a user would, and the exit-code assertion that shows its output.
 */
import assert from 'node:assert/strict';
import { databaseUrl } from './db.js';
import { runScript } from './script.js';

/** What a finished `pgnotify` run printed and how it exited. */
export interface CliOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `pgnotify …` against `url` (default: this pass's server) with `input` on stdin; rejects,
 * with its output, when it still runs after 30 s (it is killed then).
 */
export async function runCli(
  args: string[],
  options: { input?: string; url?: string } = {},
): Promise<CliOutcome> {
  const outcome = await runScript(
    'src/cli/main.ts',
    args,
    30_000,
    { DATABASE_URL: options.url ?? databaseUrl(), NO_COLOR: '1' },
    options.input ?? '',
  );
  if (outcome.timedOut) {
    throw new Error(
      `pgnotify ${args.join(' ')} still ran after 30 s\n${outcome.stdout}\n${outcome.stderr}`,
    );
  }
  return { code: outcome.code, stdout: outcome.stdout, stderr: outcome.stderr };
}

/** Asserts the exit code, showing the output when it differs. */
export function assertExit(outcome: CliOutcome, code: number, what: string): void {
  assert.equal(
    outcome.code,
    code,
    `${what}\n--- stdout\n${outcome.stdout}\n--- stderr\n${outcome.stderr}`,
  );
}
