/**
 * Runs one of the project's TypeScript entry points in a child process
 * (`node --import tsx <script> …args`, from the repository root, with DATABASE_URL set to this
 * pass's server, plus `env`), collects its output, and kills it with SIGKILL after `timeoutMs`.
 * `input`, when given, is written to its stdin (which is otherwise closed).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { databaseUrl } from './db.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ScriptOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether it was killed for running longer than `timeoutMs`. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export function runScript(
  script: string,
  args: readonly string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = {},
  input?: string,
): Promise<ScriptOutcome> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl(), ...env };
  // The script is not a test file: it must not report to this test run.
  delete childEnv.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT,
      env: childEnv,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}
