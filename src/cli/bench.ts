/**
 * `pgnotify bench [args...]`: runs the repository's benchmark (bench/run.ts) against the
 * configured server. The benchmark lives in the source tree, not in the published package.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CONNECTION_HELP, connectionFrom, ExitCode, note } from './common.js';

export function registerBench(program: Command): void {
  program
    // Hidden from `pgnotify --help` where it cannot run: an installed package has no bench/.
    .command('bench', { hidden: !existsSync(benchScript()) })
    .description('run the benchmark (bench/run.ts) against the configured server')
    .argument('[args...]', 'passed to bench/run.ts as they are (put them after --)')
    .allowUnknownOption()
    .addHelpText(
      'after',
      `
Runs "node --import tsx bench/run.ts [args...]" from the repository root, with DATABASE_URL
set from --url when given. Only available in a clone of the repository (the benchmark and tsx
are not part of the published package).
${CONNECTION_HELP}

Exit codes: the benchmark's own; 2 when bench/run.ts is not there.

Example:
  pgnotify --url postgres://localhost/test bench -- --help`,
    )
    .action(async (args: string[], _options: unknown, command: Command) => {
      process.exitCode = await bench(args, connectionFrom(command));
    });
}

/** Where bench/run.ts is in a clone: two levels up from src/cli/ and from dist/cli/ alike. */
function benchScript(): string {
  return fileURLToPath(new URL('../../bench/run.ts', import.meta.url));
}

/** Spawns the benchmark and returns its exit code. */
export async function bench(args: string[], connection: string | undefined): Promise<number> {
  // Two levels up from src/cli/ (running with tsx) and from dist/cli/ (built) alike.
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const script = benchScript();
  if (!existsSync(script)) {
    note(
      `no benchmark here (${script} does not exist): it ships with the source repository, ` +
        'not the npm package; clone the repository and run `npm run bench`',
    );
    return ExitCode.USAGE;
  }
  const env = { ...process.env };
  if (connection !== undefined) env.DATABASE_URL = connection;
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    env,
    stdio: 'inherit',
  });
  // Ctrl-C reaches the benchmark directly (same process group): wait for it to finish.
  // A SIGTERM sent to this process alone is passed on.
  const ignore = (): void => undefined;
  const forward = (): void => void child.kill('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) => {
      child.on('error', (error) => {
        note(`cannot run the benchmark: ${error.message}`);
        resolve(ExitCode.CONNECTION);
      });
      child.on('exit', (code, signal) => {
        if (code !== null) resolve(code);
        else resolve(signal === 'SIGINT' ? ExitCode.SIGINT : ExitCode.SIGTERM);
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', forward);
  }
}
