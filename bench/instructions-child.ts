/**
 * Workload (g), the receiving side, run under valgrind by bench/instructions.ts:
 * `valgrind --tool=cachegrind … node --import tsx bench/instructions-child.ts <contestant> <prefix> <channels> <count>`.
 * Starts the contestant on `channels` channels (`prefix0` …), one subscriber each, prints
 * `ready`, receives `count` notifications, closes and exits. Its counts are the parent's data.
 */

import { Sink, withListener } from './common.js';
import { LISTENERS, type ListenerName } from './contestants.js';
import { subscribersOf } from './fanout.js';

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
const url = process.env.DATABASE_URL ?? '';
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
