/**
 * Workload (g), the receiving side, run under valgrind by bench/instructions.ts:
 * `valgrind --tool=cachegrind … node --import tsx bench/instructions-child.ts <contestant> <prefix> <channels> <count>`.
 * Starts the contestant on `channels` channels (`prefix0` …), one subscriber each, prints
 * `ready`, receives `count` notifications, closes and exits. Its counts are the parent's data.
 * With contestant `durable` (`durable <schema> <channel> <count> [consumer]`): a durable
 * subscription reads the first `count` messages of the journal backlog the parent wrote, then
 * exits; with `consumer`, as that named consumer (from the start, storing its cursor).
 */

import { flushTiming } from '../src/durable-acks.js';
import { createListener } from '../src/index.js';
import { Sink, withListener } from './common.js';
import { LISTENERS, type ListenerName } from './contestants.js';
import { subscribersOf } from './fanout.js';

const url = process.env.DATABASE_URL ?? '';
if (process.argv[2] === 'durable') {
  const [, schema, channel, countText, consumer] = process.argv.slice(2);
  const count = Number(countText);
  if (schema === undefined || channel === undefined || !(count > 0))
    throw new Error('usage: durable <schema> <channel> <count> [consumer]');
  const sink = new Sink(count);
  const listener = createListener({ connection: url });
  await listener.start();
  process.stdout.write('ready\n');
  // A named consumer writes its cursor per 1 000 acknowledgements and every 100 ms. The timer
  // is off here: under valgrind (~50× slower) it would write every ~50 messages, a count that
  // depends on the machine's speed, where everything else is the same work at any speed.
  if (consumer !== undefined) flushTiming.intervalMs = Infinity;
  await listener.subscribe(channel, (n) => sink.onPayload(n.payload), {
    durable:
      consumer === undefined ? { after: 'start', schema } : { consumer, startAt: 'start', schema },
  });
  await sink.done;
  await listener.stop();
  process.stdout.write(`done ${sink.count}\n`);
  process.exit(0);
}
const [name, prefix, channelsText, countText] = process.argv.slice(2);
const channels = Number(channelsText);
const count = Number(countText);
if (
  !LISTENERS.includes(name as ListenerName) ||
  prefix === undefined ||
  !(channels > 0) ||
  !(count > 0)
) {
  throw new Error('usage: <contestant> <prefix> <channels> <count>');
}
const sink = new Sink(count);
await withListener(
  name as ListenerName,
  {
    url,
    subscribers: subscribersOf(prefix, { label: '', channels, subscribersPerChannel: 1 }),
    onPayload: sink.onPayload,
  },
  async () => {
    process.stdout.write('ready\n');
    await sink.done;
  },
);
process.stdout.write(`done ${sink.count}\n`);
