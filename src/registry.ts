/**
 * Who listens to what: an immutable value with pure transitions (no I/O). Every transition
 * returns the new registry and the channels it touched, so the listener updates its
 * delivery index and the session its LISTEN set for those channels only: O(change), not
 * O(channels), which keeps 10 000-channel listeners cheap to change.
 *
 * pgnotifier's rule decides what the server must listen to: a channel is active when it is
 * not muted and has at least one subscriber not muted on it.
 */
import { OrderedMap, OrderedSet } from 'immutable';
import { ErrorCode, PgNotifyError } from './errors.js';

/** A subscriber id: a string or a number, unique per listener. */
export type SubscriberId = string | number;

/**
 * An insertion-ordered set that is never mutated: a frozen array while it holds at most
 * {@link SMALL} items, an Immutable `OrderedSet` beyond. Nearly every channel has a few
 * subscribers and nearly every subscriber a few channels; an `OrderedSet` of one item costs
 * ~700 bytes (a map, a list and their nodes), an array ~30, and at 10 000 subscriptions those
 * sets were two thirds of a listener's heap, which every major collection walks. Past SMALL
 * the persistent set keeps each change O(log n), as for one channel with 100 000 subscribers.
 */
type Ordered<T> = readonly T[] | OrderedSet<T>;

const SMALL = 8;
const NOTHING: readonly never[] = Object.freeze([]);

function orderedOf<T>(items: readonly T[]): Ordered<T> {
  return items.length <= SMALL ? Object.freeze([...items]) : OrderedSet(items);
}

function sizeOf<T>(set: Ordered<T>): number {
  return Array.isArray(set) ? set.length : (set as OrderedSet<T>).size;
}

function has<T>(set: Ordered<T>, item: T): boolean {
  return Array.isArray(set) ? set.includes(item) : (set as OrderedSet<T>).has(item);
}

/** `set` with `item` at the end (the same set when it has it already). */
function added<T>(set: Ordered<T>, item: T): Ordered<T> {
  if (!Array.isArray(set)) return (set as OrderedSet<T>).add(item);
  if (set.includes(item)) return set;
  return set.length < SMALL ? Object.freeze([...set, item]) : OrderedSet([...set, item]);
}

/** `set` without `items`. */
function removed<T>(set: Ordered<T>, items: readonly T[]): Ordered<T> {
  if (!Array.isArray(set)) return (set as OrderedSet<T>).subtract(items);
  const rest = set.filter((item) => !items.includes(item));
  return rest.length === set.length ? set : rest.length === 0 ? NOTHING : Object.freeze(rest);
}

function toArray<T>(set: Ordered<T>): readonly T[] {
  return Array.isArray(set) ? set : (set as OrderedSet<T>).toArray();
}

interface ChannelState {
  readonly muted: boolean;
  /** Subscriber ids, in subscription order. */
  readonly subscribers: Ordered<SubscriberId>;
  /** Those of `subscribers` muted on this channel. */
  readonly mutedSubscribers: Ordered<SubscriberId>;
  /** How many subscribers are not muted on this channel. */
  readonly unmuted: number;
}

interface SubscriberState<S> {
  readonly value: S;
  readonly channels: Ordered<string>;
}

/** The registry: channels and subscribers, with their mute flags. Never mutated. */
export interface Registry<S> {
  readonly channels: OrderedMap<string, ChannelState>;
  readonly subscribers: OrderedMap<SubscriberId, SubscriberState<S>>;
}

/** A transition's outcome: the new registry and every channel whose state may have changed. */
export interface Change<S> {
  readonly registry: Registry<S>;
  readonly touched: readonly string[];
}

/** A frozen view of one channel, as returned by `listener.channels()`. */
export interface ChannelInfo {
  readonly name: string;
  readonly muted: boolean;
  /** Active: not muted and with an unmuted subscriber, so the server must listen to it. */
  readonly active: boolean;
  /** Whether the server has confirmed LISTEN on the current connection. */
  readonly listening: boolean;
  readonly subscribers: readonly { readonly id: SubscriberId; readonly muted: boolean }[];
}

/** A frozen view of one subscriber, as returned by `listener.subscribers()`. */
export interface SubscriberInfo {
  readonly id: SubscriberId;
  readonly channels: readonly { readonly name: string; readonly muted: boolean }[];
}

const EMPTY_CHANNEL: ChannelState = {
  muted: false,
  subscribers: NOTHING,
  mutedSubscribers: NOTHING,
  unmuted: 0,
};

/** Whether `id` is muted on `state`'s channel; undefined when it does not subscribe to it. */
function mutedOn(state: ChannelState | undefined, id: SubscriberId): boolean | undefined {
  if (state === undefined || !has(state.subscribers, id)) return undefined;
  return has(state.mutedSubscribers, id);
}

/** The registry with nothing in it. */
export function emptyRegistry<S>(): Registry<S> {
  return { channels: OrderedMap(), subscribers: OrderedMap() };
}

/** Whether the server must listen to a channel. */
export function isActive<S>(registry: Registry<S>, channel: string): boolean {
  const state = registry.channels.get(channel);
  return state !== undefined && !state.muted && state.unmuted > 0;
}

/** Every active channel. */
export function activeChannels<S>(registry: Registry<S>): string[] {
  const out: string[] = [];
  for (const [name, state] of registry.channels) {
    if (!state.muted && state.unmuted > 0) out.push(name);
  }
  return out;
}

/** The subscribers a notification on `channel` goes to, in subscription order. */
export function recipients<S>(registry: Registry<S>, channel: string): S[] {
  const state = registry.channels.get(channel);
  if (state === undefined || state.muted || state.unmuted === 0) return [];
  const out: S[] = [];
  const muted = state.mutedSubscribers;
  const anyMuted = sizeOf(muted) > 0;
  for (const id of state.subscribers) {
    if (anyMuted && has(muted, id)) continue;
    const subscriber = registry.subscribers.get(id);
    if (subscriber !== undefined) out.push(subscriber.value);
  }
  return out;
}

/** Adds a new subscriber on `channels`. A used id is an error. */
export function subscribe<S>(
  registry: Registry<S>,
  id: SubscriberId,
  value: S,
  channels: readonly string[],
): Change<S> {
  if (registry.subscribers.has(id)) {
    throw new PgNotifyError(
      ErrorCode.DUPLICATE_SUBSCRIBER,
      `subscriber id ${JSON.stringify(id)} is already in use on this listener`,
      { subscriberId: id },
    );
  }
  const unique = [...new Set(channels)];
  const channelMap = registry.channels.withMutations((map) => {
    for (const channel of unique) {
      const state = map.get(channel) ?? EMPTY_CHANNEL;
      map.set(channel, {
        muted: state.muted,
        subscribers: added(state.subscribers, id),
        mutedSubscribers: state.mutedSubscribers,
        unmuted: state.unmuted + 1,
      });
    }
  });
  return {
    registry: {
      channels: channelMap,
      subscribers: registry.subscribers.set(id, { value, channels: orderedOf(unique) }),
    },
    touched: unique,
  };
}

/**
 * Removes a subscriber from `channels` (all of its channels when omitted). A subscriber left
 * with no channel is removed entirely. Unknown ids and channels are ignored.
 */
export function unsubscribe<S>(
  registry: Registry<S>,
  id: SubscriberId,
  channels?: readonly string[],
): Change<S> {
  const subscriber = registry.subscribers.get(id);
  if (subscriber === undefined) return { registry, touched: [] };
  const leaving =
    channels === undefined
      ? toArray(subscriber.channels)
      : [...new Set(channels)].filter((c) => has(subscriber.channels, c));
  if (leaving.length === 0) return { registry, touched: [] };
  const channelMap = registry.channels.withMutations((map) => {
    for (const channel of leaving) {
      const state = map.get(channel);
      if (state === undefined) continue;
      const wasMuted = mutedOn(state, id);
      const next: ChannelState = {
        muted: state.muted,
        subscribers: removed(state.subscribers, [id]),
        mutedSubscribers: wasMuted ? removed(state.mutedSubscribers, [id]) : state.mutedSubscribers,
        unmuted: state.unmuted - (wasMuted === false ? 1 : 0),
      };
      if (sizeOf(next.subscribers) === 0 && !next.muted) map.delete(channel);
      else map.set(channel, next);
    }
  });
  const remaining = removed(subscriber.channels, leaving);
  return {
    registry: {
      channels: channelMap,
      subscribers:
        sizeOf(remaining) === 0
          ? registry.subscribers.delete(id)
          : registry.subscribers.set(id, { value: subscriber.value, channels: remaining }),
    },
    touched: leaving,
  };
}

/**
 * Mutes channels (every known channel when omitted): the server stops listening to them and
 * their subscribers keep their own mute flags. Muting a channel nobody subscribes to yet is
 * remembered, so a later subscriber starts muted on it.
 */
export function muteChannels<S>(registry: Registry<S>, channels?: readonly string[]): Change<S> {
  return setChannelMute(registry, channels, true);
}

/** Unmutes channels (every known channel when omitted). */
export function unmuteChannels<S>(registry: Registry<S>, channels?: readonly string[]): Change<S> {
  return setChannelMute(registry, channels, false);
}

function setChannelMute<S>(
  registry: Registry<S>,
  channels: readonly string[] | undefined,
  muted: boolean,
): Change<S> {
  const names = channels ?? registry.channels.keySeq().toArray();
  const touched: string[] = [];
  const channelMap = registry.channels.withMutations((map) => {
    for (const channel of names) {
      const state = map.get(channel) ?? EMPTY_CHANNEL;
      if (state.muted === muted) continue;
      touched.push(channel);
      if (!muted && sizeOf(state.subscribers) === 0) map.delete(channel);
      else map.set(channel, { ...state, muted });
    }
  });
  return { registry: { ...registry, channels: channelMap }, touched };
}

/** Mutes a subscriber on `channels` (all of its channels when omitted). */
export function muteSubscriber<S>(
  registry: Registry<S>,
  id: SubscriberId,
  channels?: readonly string[],
): Change<S> {
  return setSubscriberMute(registry, id, channels, true);
}

/** Unmutes a subscriber on `channels` (all of its channels when omitted). */
export function unmuteSubscriber<S>(
  registry: Registry<S>,
  id: SubscriberId,
  channels?: readonly string[],
): Change<S> {
  return setSubscriberMute(registry, id, channels, false);
}

function setSubscriberMute<S>(
  registry: Registry<S>,
  id: SubscriberId,
  channels: readonly string[] | undefined,
  muted: boolean,
): Change<S> {
  const subscriber = registry.subscribers.get(id);
  if (subscriber === undefined) {
    throw new PgNotifyError(
      ErrorCode.UNKNOWN_SUBSCRIBER,
      `no subscriber with id ${JSON.stringify(id)} on this listener`,
      { subscriberId: id },
    );
  }
  const names = channels ?? toArray(subscriber.channels);
  const touched: string[] = [];
  const channelMap = registry.channels.withMutations((map) => {
    for (const channel of names) {
      const state = map.get(channel);
      const current = mutedOn(state, id);
      if (state === undefined || current === undefined || current === muted) continue;
      touched.push(channel);
      map.set(channel, {
        muted: state.muted,
        subscribers: state.subscribers,
        mutedSubscribers: muted
          ? added(state.mutedSubscribers, id)
          : removed(state.mutedSubscribers, [id]),
        unmuted: state.unmuted + (muted ? -1 : 1),
      });
    }
  });
  return { registry: { ...registry, channels: channelMap }, touched };
}

/** The channels of one subscriber, or undefined when the id is unknown. */
export function channelsOf<S>(
  registry: Registry<S>,
  id: SubscriberId,
): readonly string[] | undefined {
  const subscriber = registry.subscribers.get(id);
  return subscriber === undefined ? undefined : [...toArray(subscriber.channels)];
}

/** A deep-frozen snapshot of every channel. */
export function channelInfos<S>(
  registry: Registry<S>,
  listening: (channel: string) => boolean,
): readonly ChannelInfo[] {
  const out: ChannelInfo[] = [];
  for (const [name, state] of registry.channels) {
    const subscribers = Object.freeze(
      toArray(state.subscribers).map((id) =>
        Object.freeze({ id, muted: has(state.mutedSubscribers, id) }),
      ),
    );
    out.push(
      Object.freeze({
        name,
        muted: state.muted,
        active: !state.muted && state.unmuted > 0,
        listening: listening(name),
        subscribers,
      }),
    );
  }
  return Object.freeze(out);
}

/** A deep-frozen snapshot of every subscriber. */
export function subscriberInfos<S>(registry: Registry<S>): readonly SubscriberInfo[] {
  const out: SubscriberInfo[] = [];
  for (const [id, subscriber] of registry.subscribers) {
    const channels = toArray(subscriber.channels).map((name) =>
      Object.freeze({ name, muted: mutedOn(registry.channels.get(name), id) ?? false }),
    );
    out.push(Object.freeze({ id, channels: Object.freeze(channels) }));
  }
  return Object.freeze(out);
}
