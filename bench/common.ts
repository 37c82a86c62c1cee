/**
 * Plumbing shared by the workloads: the run context, channel names, deadlines, and the
 * counting sink every contestant delivers to.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type ListenerName, type ListenSetup, STARTERS } from './contestants.js';
import { median } from './report.js';
import type { Sender } from './sender.js';

/** What one measured round needs; it runs in the contestant's own process (see worker.ts). */
export interface RoundContext {
  url: string;
  /** The bulk sender: a child process of the process the round runs in. */
  sender: Sender;
}

/** The round functions a contestant process runs (see worker.ts). */
export type RoundName =
  | 'delivery'
  | 'latency'
  | 'fanout'
  | 'publish'
  | 'durablePublish'
  | 'durableLatency';

export interface Context {
  url: string;
  /** The bulk sender of this process (for workloads that measure in children of their own). */
  sender: Sender;
  /**
   * Runs one round of `round` in `contestant`'s own process, started on first use and kept
   * for the run. Each contestant runs alone in its process, as in an application: no
   * contestant's JIT state, garbage or timers are measured with another's.
   */
  inProcess<T>(contestant: string, round: RoundName, args: unknown[]): Promise<T>;
  /**
   * Ends `contestant`'s process, so that its next round starts a new one. Workloads call it
   * before every measured round: each is then an independent sample (warmed up by unrecorded
   * rounds in its own process), because one process can be luckier than another for its
   * whole life (JIT decisions, where the heap lands, V8's JSON.parse fast path for the first
   * key of an object, which depends on the other objects the process made), and with one
   * process per contestant and run, that luck was in every round's figure.
   */
  freshProcess(contestant: string): Promise<void>;
  quick: boolean;
  rounds: number;
  /** The contestants of `names` selected with `--only` (all by default), in the given order. */
  pick<T extends string>(names: readonly T[]): T[];
  /** A progress line (stderr). */
  progress(line: string): void;
}

let channelCounter = 0;
/** Distinguishes the channels made by each process of a run. */
const PROCESS_TAG = process.env.PGNOTIFY_BENCH_TAG ?? '';
/** Identifies this run's channels and sessions (printed in the header); shared with children. */
export const RUN_ID = process.env.PGNOTIFY_BENCH_RUN ?? randomBytes(3).toString('hex');

/** A channel (or prefix) unique to this run: `bench_<what>_<run>_<n>`. */
export function benchChannel(what: string): string {
  channelCounter += 1;
  return `bench_${what}_${RUN_ID}${PROCESS_TAG}_${channelCounter}`;
}

/**
 * An application_name unique to this run and call, to find a contestant's backend. Every
 * session of a run is named `pgnotify-bench-<run>-…` (see {@link runAppName}).
 */
export function benchAppName(what: string): string {
  channelCounter += 1;
  return runAppName(`${what.replace(/[^a-z0-9]/gi, '')}-${PROCESS_TAG}${channelCounter}`);
}

/** `pgnotify-bench-<run>-<what>`: the application_name of every session of this run. */
export function runAppName(what: string): string {
  return `pgnotify-bench-${RUN_ID}-${what}`;
}

/** Rotates `items` by `round`, so every contestant runs first, second, … in turn. */
export function rotate<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Rejects with `what` when `promise` has not settled after `ms`. */
export async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** CPU time (user + system) in µs of a `process.cpuUsage()` delta. */
export function cpuMicros(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

/**
 * Counts deliveries until `expected`, reading each payload's `id` (so no contestant can skip
 * decoding). Records the first and last receipt time and the CPU used from `arm()` to the
 * last receipt.
 */
export class Sink {
  count = 0;
  checksum = 0;
  firstAt = 0n;
  lastAt = 0n;
  cpu: NodeJS.CpuUsage | undefined;
  private cpuStart: NodeJS.CpuUsage | undefined;
  private resolveDone!: () => void;
  readonly done: Promise<void>;

  constructor(readonly expected: number) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /** Starts the CPU window. */
  arm(): void {
    this.cpuStart = process.cpuUsage();
  }

  readonly onPayload = (payload: unknown): void => {
    this.checksum += (payload as { id: number }).id;
    const count = ++this.count;
    if (count === 1) this.firstAt = process.hrtime.bigint();
    if (count === this.expected) {
      this.lastAt = process.hrtime.bigint();
      this.cpu = process.cpuUsage(this.cpuStart);
      this.resolveDone();
    }
  };

  /** Microseconds from the first to the last receipt. */
  get spanMicros(): number {
    return Number(this.lastAt - this.firstAt) / 1000;
  }
}

/** A connected pg.Client for the bench's own statements; a lost connection is not an error here. */
export async function connectedClient(url: string, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Per row (contestant, or layout / contestant), per metric: one value per round. */
export type Samples = Record<string, Record<string, number[]>>;
export type Medians = Record<string, Record<string, number>>;

export interface WorkloadResult {
  key: string;
  title: string;
  params: Record<string, unknown>;
  samples: Samples;
  medians: Medians;
  /** Anything a workload reports besides numbers (e.g. loss reports). */
  details?: Record<string, unknown>;
  text: string;
}

function record(samples: Samples, row: string, values: Record<string, number>): void {
  const entry = samples[row] ?? {};
  samples[row] = entry;
  for (const [metric, value] of Object.entries(values)) {
    const list = entry[metric] ?? [];
    list.push(value);
    entry[metric] = list;
  }
}

function mediansOf(samples: Samples): Medians {
  const out: Medians = {};
  for (const [row, metrics] of Object.entries(samples)) {
    const entry: Record<string, number> = {};
    for (const [metric, values] of Object.entries(metrics)) entry[metric] = median(values);
    out[row] = entry;
  }
  return out;
}

/** Starts listener `name` (with a unique application_name), runs `body`, always closes it. */
export async function withListener<T>(
  name: ListenerName,
  setup: Omit<ListenSetup, 'appName'>,
  body: () => Promise<T>,
): Promise<T> {
  const running = await STARTERS[name]({ appName: benchAppName(name), ...setup });
  try {
    return await body();
  } finally {
    await running.close();
  }
}

/** A generous but finite deadline for receiving `notifications`: 30 s, or 10k per second. */
export function budgetMs(notifications: number): number {
  return Math.max(30_000, notifications / 10);
}

/**
 * The receiving half of a throughput round, in the contestant's own process: starts `name`
 * with `subscribers`, opens the CPU window, runs `send`, and waits for `calls` handler calls.
 * Returns the CPU µs from the send to the last call and the µs from the first call to the last.
 */
export async function receive(
  ctx: RoundContext,
  name: ListenerName,
  subscribers: readonly (readonly string[])[],
  calls: number,
  send: () => Promise<void>,
  what: string,
): Promise<{ cpuMicros: number; spanMicros: number }> {
  const sink = new Sink(calls);
  return withListener(name, { url: ctx.url, subscribers, onPayload: sink.onPayload }, async () => {
    sink.arm();
    const sent = send();
    await deadline(sink.done, budgetMs(calls), what);
    await sent;
    return { cpuMicros: cpuMicros(sink.cpu as NodeJS.CpuUsage), spanMicros: sink.spanMicros };
  });
}

/** Records one measured figure set under `row` and prints `progress` (see {@link runRounds}). */
export type Report = (row: string, values: Record<string, number>, progress: string) => void;

export interface Rounds<T> {
  /** How many rounds (default: `ctx.rounds`). */
  rounds?: number;
  /**
   * The turns of round `round`, in order: usually `rotate(contestants, round)`, so that every
   * contestant runs first, second, … in turn.
   */
  turns(round: number): readonly T[];
  /**
   * Runs one turn (starting a fresh process, warming up, as the workload needs) and reports
   * every measured figure set. `label` is `round 2/5`, for the progress line.
   */
  measure(turn: T, report: Report, label: string): Promise<void>;
  /** Runs after the last turn of each round (e.g. a reference measurement). */
  afterRound?(round: number, label: string): Promise<void>;
}

/**
 * The skeleton every workload shares: rounds of turns, each turn's figures recorded per row,
 * a progress line per figure set, and the medians over the rounds.
 */
export async function runRounds<T>(
  ctx: Context,
  spec: Rounds<T>,
): Promise<{ samples: Samples; medians: Medians }> {
  const samples: Samples = {};
  const rounds = spec.rounds ?? ctx.rounds;
  const report: Report = (row, values, progress) => {
    record(samples, row, values);
    ctx.progress(progress);
  };
  for (let round = 0; round < rounds; round++) {
    const label = `round ${round + 1}/${rounds}`;
    for (const turn of spec.turns(round)) await spec.measure(turn, report, label);
    await spec.afterRound?.(round, label);
  }
  return { samples, medians: mediansOf(samples) };
}

/** The payload every workload sends: (a)'s ~120-byte JSON object, numbered `i`. */
export function userPayload(i: number): {
  id: number;
  name: string;
  email: string;
  tags: string[];
  active: boolean;
} {
  return {
    id: i,
    name: `user_${i}`,
    email: `user${i}@example.com`,
    tags: ['a', 'b', 'c'],
    active: true,
  };
}
