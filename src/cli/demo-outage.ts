/**
 * The demo's section 5: the listener's own backend is terminated; the demo shows the
 * reconnect events and the gap report, then delivers again.
 */
import type pg from 'pg';
import type { Gap, Listener, Notifier, OutageGap } from '../index.js';
import { sleep } from './common.js';
import type { TourContext } from './demo.js';
import { clock, heading, paint, showChannel, showChannels } from './format.js';

/** 5. Kill the listener's backend; watch the reconnect and the gap report; deliver again. */
export async function killConnection(
  listener: Listener,
  notifier: Notifier,
  admin: pg.Client,
  channel: string,
  { say, color, signal }: TourContext,
): Promise<void> {
  say(heading("5. Killing the listener's own backend: reconnect and gap report", color));
  const pid = listener.pid;
  let onGap: ((gap: Gap) => void) | undefined;
  const gapReported = new Promise<OutageGap>((resolve) => {
    onGap = (gap) => {
      if (gap.kind === 'gap') resolve(gap);
    };
    listener.on('gap', onGap);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    say(
      `  ${paint('dim', `SELECT pg_terminate_backend(${pid})   -- the listener's own connection`, color)}`,
    );
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const gap = await Promise.race([
      gapReported,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no gap report within 20 s')), 20_000);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      }),
    ]);
    say(
      `  → LISTEN was live again on ${showChannels(gap.channels)} before the gap was reported: resync ` +
        `what changed since ${clock(gap.disconnectedAt)}, then carry on; nothing sent after ` +
        `${clock(gap.reconnectedAt)} is lost`,
    );
  } finally {
    clearTimeout(timer);
    if (onGap !== undefined) listener.off('gap', onGap);
  }
  say(`  ${paint('dim', `notify ${showChannel(channel)} "after the outage"`, color)}`);
  const delivered = listener.once(channel, { timeoutMs: 10_000, signal });
  await notifier.notify(channel, 'after the outage');
  await delivered;
  await sleep(100, signal); // alice and bob print theirs
}
