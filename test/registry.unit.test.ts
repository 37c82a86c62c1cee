/**
 * Unit tests of src/registry.ts: the one record of channels, subscribers and mute flags, and
 * its transitions (no I/O; each returns the channels it touched). No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode } from '../src/errors.js';
import { Registry } from '../src/registry.js';
import type { SubscriberId } from '../src/types.js';
import { throwsCode } from './helpers/assert.js';

type R = Registry<string>;

// The registry changes in place. These helpers run one transition and return the registry
// (the same object) with the channels the transition touched, so each test reads as a
// sequence of transitions and what they touched.
interface Change<S> {
  readonly registry: Registry<S>;
  readonly touched: readonly string[];
}
const emptyRegistry = <S>(): Registry<S> => new Registry<S>();
const change = <S>(registry: Registry<S>, touched: readonly string[]): Change<S> => ({
  registry,
  touched,
});
const subscribe = <S>(r: Registry<S>, id: SubscriberId, value: S, channels: string[]) =>
  change(r, r.subscribe(id, value, channels));
const unsubscribe = <S>(r: Registry<S>, id: SubscriberId, channels?: string[]) =>
  change(r, r.unsubscribe(id, channels));
const muteChannels = <S>(r: Registry<S>, channels?: string[]) =>
  change(r, r.muteChannels(channels));
const unmuteChannels = <S>(r: Registry<S>, channels?: string[]) =>
  change(r, r.unmuteChannels(channels));
const muteSubscriber = <S>(r: Registry<S>, id: SubscriberId, channels?: string[]) =>
  change(r, r.muteSubscriber(id, channels));
const unmuteSubscriber = <S>(r: Registry<S>, id: SubscriberId, channels?: string[]) =>
  change(r, r.unmuteSubscriber(id, channels));
const isActive = <S>(r: Registry<S>, channel: string) => r.isActive(channel);
const activeChannels = <S>(r: Registry<S>) => r.activeChannels();
const recipients = <S>(r: Registry<S>, channel: string) => r.recipients(channel);
const channelsOf = <S>(r: Registry<S>, id: SubscriberId) => r.channelsOf(id);
const channelInfos = <S>(r: Registry<S>, listening: (channel: string) => boolean) =>
  r.channelInfos(listening);
const subscriberInfos = <S>(r: Registry<S>) => r.subscriberInfos();

/** Everything observable about a registry, as plain data. */
function snapshot(registry: R): unknown {
  const channels = channelInfos(registry, () => false);
  return {
    channels: channels.map((c) => ({
      ...c,
      subscribers: c.subscribers.map((s) => ({ ...s })),
      recipients: recipients(registry, c.name),
    })),
    subscribers: subscriberInfos(registry).map((s) => ({
      id: s.id,
      channels: s.channels.map((c) => ({ ...c })),
      of: channelsOf(registry, s.id),
    })),
    active: activeChannels(registry),
  };
}

/** Builds a registry from a list of (id, channels) subscriptions; value = `v<id>`. */
function build(subs: [SubscriberId, string[]][]): R {
  let r: R = emptyRegistry();
  for (const [id, channels] of subs) r = subscribe(r, id, `v${id}`, channels).registry;
  return r;
}

describe('transitions', () => {
  test('a failing transition leaves the registry as it was', () => {
    const r0 = build([[1, ['a']]]);
    const before = snapshot(r0);
    throwsCode(() => subscribe(r0, 1, 'again', ['b']), ErrorCode.DUPLICATE_SUBSCRIBER);
    throwsCode(() => muteSubscriber(r0, 99), ErrorCode.UNKNOWN_SUBSCRIBER);
    assert.deepEqual(snapshot(r0), before);
  });

  test('a transition that touches nothing changes nothing', () => {
    const r = build([
      [1, ['a', 'b']],
      [2, ['a']],
    ]);
    r.muteChannels(['b']);
    const before = snapshot(r);
    assert.deepEqual(r.unsubscribe(3), []);
    assert.deepEqual(r.unsubscribe(1, ['zzz']), []);
    assert.deepEqual(r.muteChannels(['b']), []);
    assert.deepEqual(r.unmuteChannels(['a', 'unknown']), []);
    assert.deepEqual(r.unmuteSubscriber(2), []);
    assert.deepEqual(r.muteSubscriber(1, ['nope']), []);
    assert.deepEqual(snapshot(r), before);
  });

  test('recipient lists are fresh arrays: changing the registry does not change one held', () => {
    const r = build([
      [1, ['a']],
      [2, ['a']],
    ]);
    const held = recipients(r, 'a');
    r.unsubscribe(1);
    r.subscribe(3, 'v3', ['a']);
    assert.deepEqual(held, ['v1', 'v2']);
    assert.deepEqual(recipients(r, 'a'), ['v2', 'v3']);
  });
});

describe('subscribe / unsubscribe', () => {
  test('the empty registry has nothing', () => {
    const r: R = emptyRegistry();
    assert.deepEqual(activeChannels(r), []);
    assert.deepEqual(
      channelInfos(r, () => true),
      [],
    );
    assert.deepEqual(subscriberInfos(r), []);
    assert.equal(isActive(r, 'a'), false);
    assert.deepEqual(recipients(r, 'a'), []);
    assert.equal(channelsOf(r, 1), undefined);
  });

  test('a subscriber is recorded with its channels, duplicates removed', () => {
    const change = subscribe(emptyRegistry<string>(), 'x', 'vx', ['a', 'b', 'a']);
    assert.deepEqual(change.touched, ['a', 'b']);
    assert.deepEqual(channelsOf(change.registry, 'x'), ['a', 'b']);
    assert.deepEqual(activeChannels(change.registry), ['a', 'b']);
    assert.deepEqual(subscriberInfos(change.registry), [
      {
        id: 'x',
        channels: [
          { name: 'a', muted: false },
          { name: 'b', muted: false },
        ],
      },
    ]);
  });

  test('string and number ids are distinct', () => {
    const r = build([
      [1, ['a']],
      ['1', ['a']],
    ]);
    assert.deepEqual(recipients(r, 'a'), ['v1', 'v1']);
    assert.deepEqual(
      subscriberInfos(r).map((s) => s.id),
      [1, '1'],
    );
  });

  test('a used id is DUPLICATE_SUBSCRIBER, even for other channels', () => {
    const r = build([[7, ['a']]]);
    const error = throwsCode(() => subscribe(r, 7, 'other', ['b']), ErrorCode.DUPLICATE_SUBSCRIBER);
    assert.equal(error.subscriberId, 7);
    // Once unsubscribed, the id is free again.
    const freed = unsubscribe(r, 7).registry;
    assert.deepEqual(channelsOf(subscribe(freed, 7, 'again', ['b']).registry, 7), ['b']);
  });

  test('unsubscribing an unknown id is a no-op', () => {
    const r = build([[1, ['a']]]);
    const change = unsubscribe(r, 2);
    assert.equal(change.registry, r);
    assert.deepEqual(change.touched, []);
    const partial = unsubscribe(r, 2, ['a']);
    assert.equal(partial.registry, r);
    assert.deepEqual(partial.touched, []);
  });

  test('unsubscribing from channels the subscriber does not have is a no-op', () => {
    const r = build([
      [1, ['a']],
      [2, ['b']],
    ]);
    const change = unsubscribe(r, 1, ['b', 'zzz']);
    assert.equal(change.registry, r);
    assert.deepEqual(change.touched, []);
    assert.deepEqual(recipients(change.registry, 'b'), ['v2']);
  });

  test('partial unsubscribe keeps the subscriber on the rest', () => {
    const r = build([[1, ['a', 'b', 'c']]]);
    const change = unsubscribe(r, 1, ['b', 'zzz']);
    assert.deepEqual(change.touched, ['b']);
    assert.deepEqual(channelsOf(change.registry, 1), ['a', 'c']);
    assert.deepEqual(activeChannels(change.registry), ['a', 'c']);
    // The last channel gone removes the subscriber entirely.
    const gone = unsubscribe(change.registry, 1, ['a', 'c']);
    assert.deepEqual(gone.touched, ['a', 'c']);
    assert.equal(channelsOf(gone.registry, 1), undefined);
    assert.deepEqual(subscriberInfos(gone.registry), []);
    assert.deepEqual(
      channelInfos(gone.registry, () => false),
      [],
    );
  });

  test('a channel stays while another subscriber has it', () => {
    const r = build([
      [1, ['a']],
      [2, ['a']],
    ]);
    const change = unsubscribe(r, 1);
    assert.deepEqual(change.touched, ['a']);
    assert.equal(isActive(change.registry, 'a'), true);
    assert.deepEqual(recipients(change.registry, 'a'), ['v2']);
  });

  test('touched has no duplicates when a channel is named twice in unsubscribe', () => {
    const r = build([[1, ['a', 'b']]]);
    const change = unsubscribe(r, 1, ['a', 'a']);
    assert.deepEqual(change.touched, ['a']);
    assert.deepEqual(channelsOf(change.registry, 1), ['b']);
  });
});

describe("pgnotifier's rule: active iff the channel is not muted and has an unmuted subscriber", () => {
  // Every combination of channel mute and up to two subscribers' mute flags.
  const cases: { channelMuted: boolean; subscribers: boolean[] }[] = [];
  for (const channelMuted of [false, true]) {
    for (const subscribers of [[], [false], [true], [false, false], [false, true], [true, true]]) {
      cases.push({ channelMuted, subscribers });
    }
  }

  for (const { channelMuted, subscribers } of cases) {
    const expected = !channelMuted && subscribers.some((muted) => !muted);
    test(`channel ${channelMuted ? 'muted' : 'unmuted'}, subscribers ${JSON.stringify(subscribers)} → ${expected ? 'active' : 'inactive'}`, () => {
      let r: R = emptyRegistry();
      // An unrelated active channel, so the rule is checked per channel.
      r = subscribe(r, 'other', 'vother', ['z']).registry;
      subscribers.forEach((_, i) => {
        r = subscribe(r, i, `v${i}`, ['a']).registry;
      });
      subscribers.forEach((muted, i) => {
        if (muted) r = muteSubscriber(r, i, ['a']).registry;
      });
      if (channelMuted) r = muteChannels(r, ['a']).registry;

      assert.equal(isActive(r, 'a'), expected);
      assert.deepEqual(activeChannels(r), expected ? ['z', 'a'] : ['z']);
      const info = channelInfos(r, () => false).find((c) => c.name === 'a');
      if (subscribers.length === 0 && !channelMuted) assert.equal(info, undefined);
      else {
        assert.ok(info);
        assert.equal(info.active, expected);
        assert.equal(info.muted, channelMuted);
        assert.deepEqual(
          info.subscribers.map((s) => s.muted),
          subscribers,
        );
      }
      const want = channelMuted ? [] : subscribers.flatMap((muted, i) => (muted ? [] : [`v${i}`]));
      assert.deepEqual(recipients(r, 'a'), want);
      assert.equal(isActive(r, 'z'), true);
    });
  }

  test('unmuting brings a channel back exactly when the rule says so', () => {
    let r = build([
      [1, ['a']],
      [2, ['a']],
    ]);
    r = muteSubscriber(r, 1).registry;
    r = muteChannels(r, ['a']).registry;
    assert.equal(isActive(r, 'a'), false);
    r = unmuteChannels(r, ['a']).registry;
    assert.equal(isActive(r, 'a'), true); // subscriber 2 is unmuted
    r = muteSubscriber(r, 2).registry;
    assert.equal(isActive(r, 'a'), false); // both subscribers muted
    r = unmuteSubscriber(r, 1).registry;
    assert.equal(isActive(r, 'a'), true);
    r = unsubscribe(r, 1).registry;
    assert.equal(isActive(r, 'a'), false); // only the muted subscriber 2 is left
    assert.deepEqual(recipients(r, 'a'), []);
  });

  test('a subscriber muted on one channel still receives on the others', () => {
    let r = build([[1, ['a', 'b']]]);
    r = muteSubscriber(r, 1, ['a']).registry;
    assert.deepEqual(recipients(r, 'a'), []);
    assert.deepEqual(recipients(r, 'b'), ['v1']);
    assert.deepEqual(subscriberInfos(r)[0]?.channels, [
      { name: 'a', muted: true },
      { name: 'b', muted: false },
    ]);
  });

  test('unsubscribing a muted subscriber keeps the unmuted count right', () => {
    let r = build([
      [1, ['a']],
      [2, ['a']],
    ]);
    r = muteSubscriber(r, 1).registry;
    r = unsubscribe(r, 1).registry; // removes a muted subscriber: the count must not drop
    assert.equal(isActive(r, 'a'), true);
    r = muteSubscriber(r, 2).registry;
    assert.equal(isActive(r, 'a'), false);
    r = unmuteSubscriber(r, 2).registry;
    assert.equal(isActive(r, 'a'), true);
  });
});

describe('mute and unmute', () => {
  test('muteSubscriber of an unknown id is UNKNOWN_SUBSCRIBER', () => {
    const r = build([[1, ['a']]]);
    const error = throwsCode(() => muteSubscriber(r, 'ghost'), ErrorCode.UNKNOWN_SUBSCRIBER);
    assert.equal(error.subscriberId, 'ghost');
    throwsCode(() => unmuteSubscriber(r, 2, ['a']), ErrorCode.UNKNOWN_SUBSCRIBER);
  });

  test('muting a channel before anyone subscribes is remembered', () => {
    let r: R = emptyRegistry();
    const change = muteChannels(r, ['later']);
    assert.deepEqual(change.touched, ['later']);
    r = change.registry;
    assert.deepEqual(
      channelInfos(r, () => false),
      [{ name: 'later', muted: true, active: false, listening: false, subscribers: [] }],
    );
    r = subscribe(r, 1, 'v1', ['later']).registry;
    assert.equal(isActive(r, 'later'), false);
    assert.deepEqual(recipients(r, 'later'), []);
    // The muted channel survives its last subscriber leaving.
    const left = unsubscribe(r, 1).registry;
    assert.equal(channelInfos(left, () => false)[0]?.muted, true);
    r = subscribe(r, 1, 'v1', ['later']).registry;
    r = unmuteChannels(r, ['later']).registry;
    assert.equal(isActive(r, 'later'), true);
    assert.deepEqual(recipients(r, 'later'), ['v1']);
  });

  test('unmuting a channel nobody subscribes to forgets it', () => {
    const muted = muteChannels(emptyRegistry<string>(), ['x']).registry;
    const change = unmuteChannels(muted, ['x']);
    assert.deepEqual(change.touched, ['x']);
    assert.deepEqual(
      channelInfos(change.registry, () => false),
      [],
    );
  });

  test('muteChannels() without a list mutes every known channel', () => {
    const r = build([
      [1, ['a', 'b']],
      [2, ['c']],
    ]);
    const change = muteChannels(r);
    assert.deepEqual(change.touched, ['a', 'b', 'c']);
    assert.deepEqual(activeChannels(change.registry), []);
    const back = unmuteChannels(change.registry);
    assert.deepEqual(back.touched, ['a', 'b', 'c']);
    assert.deepEqual(activeChannels(back.registry), ['a', 'b', 'c']);
  });
});

describe('touched lists exactly the changed channels', () => {
  test('muting an already muted channel touches nothing', () => {
    let r = build([[1, ['a', 'b']]]);
    r = muteChannels(r, ['a']).registry;
    const again = muteChannels(r, ['a', 'b']);
    assert.deepEqual(again.touched, ['b']);
    const before = snapshot(again.registry);
    const twice = muteChannels(again.registry, ['a', 'b']);
    assert.deepEqual(twice.touched, []);
    assert.deepEqual(snapshot(twice.registry), before);
  });

  test('unmuting an unmuted or unknown channel touches nothing', () => {
    const r = build([[1, ['a']]]);
    const change = unmuteChannels(r, ['a', 'unknown']);
    assert.deepEqual(change.touched, []);
    assert.deepEqual(
      channelInfos(change.registry, () => false).map((c) => c.name),
      ['a'],
    );
  });

  test('muteSubscriber touches only channels whose flag changed', () => {
    let r = build([
      [1, ['a', 'b', 'c']],
      [2, ['d']],
    ]);
    r = muteSubscriber(r, 1, ['b']).registry;
    const change = muteSubscriber(r, 1, ['a', 'b', 'd', 'nope']);
    // b was already muted; d and nope are not this subscriber's channels.
    assert.deepEqual(change.touched, ['a']);
    const all = muteSubscriber(change.registry, 1);
    assert.deepEqual(all.touched, ['c']);
    const none = muteSubscriber(all.registry, 1);
    assert.deepEqual(none.touched, []);
    const un = unmuteSubscriber(all.registry, 1, ['c', 'd']);
    assert.deepEqual(un.touched, ['c']);
    assert.deepEqual(recipients(un.registry, 'd'), ['v2']);
  });

  test('subscribe and unsubscribe touch the channels named', () => {
    const r = build([[1, ['a']]]);
    assert.deepEqual(subscribe(r, 2, 'v2', ['a', 'b']).touched, ['a', 'b']);
    assert.deepEqual(unsubscribe(r, 1).touched, ['a']);
  });
});

describe('recipients', () => {
  test('follow subscription order and skip muted subscribers', () => {
    let r = build([
      [3, ['a']],
      [1, ['a']],
      ['x', ['a', 'b']],
      [2, ['a']],
    ]);
    assert.deepEqual(recipients(r, 'a'), ['v3', 'v1', 'vx', 'v2']);
    r = muteSubscriber(r, 1).registry;
    r = muteSubscriber(r, 'x', ['a']).registry;
    assert.deepEqual(recipients(r, 'a'), ['v3', 'v2']);
    assert.deepEqual(recipients(r, 'b'), ['vx']);
    // Unmuting keeps the original position, not the end of the list.
    r = unmuteSubscriber(r, 1).registry;
    assert.deepEqual(recipients(r, 'a'), ['v3', 'v1', 'v2']);
  });

  test('the subscriber value is what is returned', () => {
    const value = { name: 'obj' };
    const r = subscribe(emptyRegistry<{ name: string }>(), 1, value, ['a']).registry;
    assert.equal(recipients(r, 'a')[0], value);
  });
});

describe('channelInfos / subscriberInfos snapshots', () => {
  const r = muteSubscriber(
    build([
      [1, ['a', 'b']],
      [2, ['b']],
    ]),
    2,
  ).registry;

  test('describe the registry', () => {
    const listening = new Set(['a']);
    assert.deepEqual(
      channelInfos(r, (c) => listening.has(c)),
      [
        {
          name: 'a',
          muted: false,
          active: true,
          listening: true,
          subscribers: [{ id: 1, muted: false }],
        },
        {
          name: 'b',
          muted: false,
          active: true,
          listening: false,
          subscribers: [
            { id: 1, muted: false },
            { id: 2, muted: true },
          ],
        },
      ],
    );
    assert.deepEqual(subscriberInfos(r), [
      {
        id: 1,
        channels: [
          { name: 'a', muted: false },
          { name: 'b', muted: false },
        ],
      },
      { id: 2, channels: [{ name: 'b', muted: true }] },
    ]);
  });

  test('are deeply frozen: assigning throws', () => {
    const channels = channelInfos(r, () => false);
    assert.ok(Object.isFrozen(channels));
    for (const info of channels) {
      assert.ok(Object.isFrozen(info));
      assert.ok(Object.isFrozen(info.subscribers));
      for (const s of info.subscribers) assert.ok(Object.isFrozen(s));
    }
    const subscribers = subscriberInfos(r);
    assert.ok(Object.isFrozen(subscribers));
    for (const info of subscribers) {
      assert.ok(Object.isFrozen(info));
      assert.ok(Object.isFrozen(info.channels));
      for (const c of info.channels) assert.ok(Object.isFrozen(c));
    }
    // ES modules are strict: writes to frozen objects throw.
    const first = channels[0] as unknown as { muted: boolean; subscribers: unknown[] };
    assert.throws(() => {
      first.muted = true;
    }, TypeError);
    assert.throws(() => {
      (channels as unknown as unknown[]).push({});
    }, TypeError);
    assert.throws(() => {
      first.subscribers.pop();
    }, TypeError);
    assert.throws(() => {
      (first.subscribers[0] as { muted: boolean }).muted = true;
    }, TypeError);
    const sub = subscribers[0] as unknown as { id: unknown; channels: { name: string }[] };
    assert.throws(() => {
      sub.id = 99;
    }, TypeError);
    assert.throws(() => {
      (sub.channels[0] as { name: string }).name = 'x';
    }, TypeError);
    assert.throws(() => {
      sub.channels.length = 0;
    }, TypeError);
  });

  test('are snapshots: later transitions do not change them', () => {
    const before = channelInfos(r, () => false);
    const after = unsubscribe(r, 1).registry;
    assert.equal(before.length, 2);
    assert.equal(before[1]?.subscribers.length, 2);
    assert.equal(channelInfos(after, () => false).length, 1);
  });
});

describe('scale', () => {
  test('10 000 single-channel subscribes build a 10 000-channel registry', () => {
    const n = 10_000;
    let r: Registry<number> = emptyRegistry();
    for (let i = 0; i < n; i++) {
      const change = subscribe(r, i, i, [`channel_${i}`]);
      assert.equal(change.touched.length, 1);
      r = change.registry;
    }
    const active = activeChannels(r);
    assert.equal(active.length, n);
    assert.equal(active[0], 'channel_0');
    assert.equal(active[n - 1], `channel_${n - 1}`);
    assert.deepEqual(recipients(r, 'channel_5000'), [5000]);
    const muted = muteChannels(r, ['channel_1']);
    assert.deepEqual(muted.touched, ['channel_1']);
    assert.equal(activeChannels(muted.registry).length, n - 1);
    assert.deepEqual(unmuteChannels(r, ['channel_1']).touched, ['channel_1']);
    assert.equal(activeChannels(r).length, n);
  });
});

// Ordering and counts hold for larger sets than the usual one or two.
describe('many subscribers on a channel, many channels on a subscriber', () => {
  const ids = Array.from({ length: 20 }, (_, i) => i);

  test('20 subscribers on one channel keep their order through mutes and unsubscribes', () => {
    let r = build(ids.map((id) => [id, ['a']]));
    assert.deepEqual(
      recipients(r, 'a'),
      ids.map((id) => `v${id}`),
    );
    // Mute 12 of them (the muted set also grows past 8), one transition at a time.
    const muted = ids.filter((id) => id % 5 !== 0);
    for (const id of muted.slice(0, 12)) r = muteSubscriber(r, id).registry;
    const live = ids.filter((id) => !muted.slice(0, 12).includes(id));
    assert.deepEqual(
      recipients(r, 'a'),
      live.map((id) => `v${id}`),
    );
    const info = channelInfos(r, () => false)[0];
    assert.deepEqual(
      info?.subscribers.filter((s) => s.muted).map((s) => s.id),
      muted.slice(0, 12),
    );
    assert.equal(isActive(r, 'a'), true);
    // Unmuting puts a subscriber back where it was; unsubscribing removes it from the middle.
    r = unmuteSubscriber(r, 1).registry;
    r = unsubscribe(r, 2).registry;
    r = unsubscribe(r, 0).registry;
    assert.deepEqual(recipients(r, 'a').slice(0, 3), ['v1', 'v5', 'v10']);
    // Unsubscribing muted subscribers keeps the count of unmuted ones right.
    for (const id of ids) r = unsubscribe(r, id).registry;
    assert.deepEqual(
      channelInfos(r, () => false),
      [],
    );
    assert.deepEqual(activeChannels(r), []);
  });

  test('a subscriber on 20 channels, left on fewer and fewer', () => {
    const channels = ids.map((i) => `c${i}`);
    let r = build([['s', channels]]);
    assert.deepEqual(channelsOf(r, 's'), channels);
    r = muteSubscriber(r, 's', ['c3', 'c19']).registry;
    const leave = channels.filter((_, i) => i % 3 !== 0);
    const left = unsubscribe(r, 's', leave);
    assert.deepEqual(left.touched, leave);
    r = left.registry;
    const rest = channels.filter((_, i) => i % 3 === 0);
    assert.deepEqual(channelsOf(r, 's'), rest);
    assert.deepEqual(
      activeChannels(r),
      rest.filter((c) => c !== 'c3'),
    );
    assert.deepEqual(
      subscriberInfos(r)[0]?.channels.map((c) => [c.name, c.muted]),
      rest.map((c) => [c, c === 'c3']),
    );
    r = unsubscribe(r, 's', rest.slice(1)).registry;
    assert.deepEqual(channelsOf(r, 's'), ['c0']);
    r = unsubscribe(r, 's', ['c0']).registry;
    assert.equal(channelsOf(r, 's'), undefined);
    assert.deepEqual(subscriberInfos(r), []);
  });

  test('20 000 subscribers on one channel', () => {
    const n = 20_000;
    let r: Registry<number> = emptyRegistry();
    for (let i = 0; i < n; i++) r = subscribe(r, i, i, ['all']).registry;
    r = muteSubscriber(r, 0).registry;
    const to = recipients(r, 'all');
    assert.equal(to.length, n - 1);
    assert.equal(to[0], 1);
    assert.equal(to[n - 2], n - 1);
    r = unsubscribe(r, n - 1).registry;
    assert.equal(recipients(r, 'all').length, n - 2);
  });
});
