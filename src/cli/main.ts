#!/usr/bin/env node
/**
 * The `pgnotify` command: listen, notify, demo, doctor, bench. Each subcommand lives in its own
 * file and uses only the library's public API; this file wires them to commander and turns
 * usage errors into exit code 2.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { registerBench } from './bench.js';
import { CONNECTION_HELP, EXIT_CODES_HELP, ExitCode, reportFailure } from './common.js';
import { registerDemo } from './demo.js';
import { registerDoctor } from './doctor.js';
import { registerListen } from './listen.js';
import { registerNotify } from './notify.js';
import { registerServe } from './serve.js';
import { registerSetup } from './setup.js';

// Two levels up from src/cli/ and from dist/cli/ alike.
const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('pgnotify')
  .description('PostgreSQL LISTEN/NOTIFY from the terminal: listen, notify, check a server, demo')
  .version(version, '-V, --version')
  .option('--url <url>', 'connection string (default: DATABASE_URL, else the PG* variables)')
  .configureHelp({ showGlobalOptions: true })
  .showHelpAfterError('(run with --help for usage)')
  // Settings above are inherited by the subcommands registered below.
  .exitOverride()
  .addHelpText('after', `${CONNECTION_HELP}\n${EXIT_CODES_HELP}`);

registerListen(program);
registerNotify(program);
registerDemo(program);
registerDoctor(program);
registerBench(program);
registerSetup(program);
registerServe(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; everything commander refuses is a usage error.
    const shown = error.code === 'commander.helpDisplayed' || error.code === 'commander.version';
    process.exitCode = shown ? ExitCode.OK : ExitCode.USAGE;
  } else {
    process.exitCode = reportFailure(error);
  }
}

// Everything was closed; should a stray handle keep the loop alive, exit anyway.
setTimeout(() => process.exit(), 2000).unref();
