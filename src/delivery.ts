/**
 * From a raw notification to the subscribers it is for: a channel → recipients index derived
 * from the registry (rebuilt for the channels a change touched), decoding once per decoder,
 * per-channel schemas, and arrival order kept even when a schema validates asynchronously.
 * Knows no connection: unit-testable with fake recipients.
 */
import { type DecodeFunction, type Schema, type Validated, validate } from './codec.js';
import { ErrorCode, PgNotifyError, toError } from './errors.js';
import type { Notification } from './types.js';

/** What delivery needs of a subscriber. */
export interface Recipient {
  /** Its own decoder, when it differs from the listener's. */
  readonly decoder: DecodeFunction | undefined;
  /** A channel whose notification ends it: that one is handed over raw, never decoded. */
  readonly stopChannel: string | undefined;
  /**
   * A channel of pgnotify's own it stands on (a durable subscription's wake channel): handed over
   * raw, never decoded nor validated, whatever the recipient's decoder.
   */
  readonly rawChannel?: string | undefined;
  deliver(notification: Notification): void;
}

/** A channel's entry in the index. */
interface Entry<R> {
  /** The channel as subscribed (long-lived): notifications share it instead of pg's copy. */
  readonly channel: string;
  readonly recipients: readonly R[];
  /**
   * No schema, every recipient uses the listener's decoder and none stops on this channel or
   * takes it raw: decode once and hand the same notification to all.
   */
  readonly plain: boolean;
}

/** Delivery's setup. */
export interface DeliveryOptions {
  /** The listener's decoder. */
  decoder: DecodeFunction;
  /** Per-channel schemas. */
  schemas: ReadonlyMap<string, Schema>;
  /** Where decode and validation failures go; must not throw. */
  report(error: PgNotifyError): void;
}

/** The listener's delivery: one per listener, fed by the session's notification hook. */
export class Delivery<R extends Recipient = Recipient> {
  /** Deliveries made, payloads that failed to decode, payloads that failed their schema. */
  readonly counters = { delivered: 0, decodeErrors: 0, validationErrors: 0 };
  readonly #index = new Map<string, Entry<R>>();
  /**
   * The entry the last notification went to; cleared by every update. Bursts stay on one
   * channel, and comparing with its channel is cheaper than hashing the fresh string pg
   * makes for every notification (the fresh string itself is never stored).
   */
  #last: Entry<R> | undefined;
  readonly #decoder: DecodeFunction;
  readonly #schemas: ReadonlyMap<string, Schema>;
  readonly #report: (error: PgNotifyError) => void;
  /** Set while an asynchronous validation runs: later notifications queue behind it. */
  #chain: Promise<void> | undefined;
  #chainLength = 0;
  readonly #validated = new WeakMap<
    Notification,
    Notification | null | Promise<Notification | null>
  >();

  constructor(options: DeliveryOptions) {
    this.#decoder = options.decoder;
    this.#schemas = options.schemas;
    this.#report = options.report;
  }

  /** Re-derives the index entries of `channels` from the registry's `recipients`. */
  update(channels: Iterable<string>, recipients: (channel: string) => R[]): void {
    this.#last = undefined;
    for (const channel of channels) {
      const list = recipients(channel);
      if (list.length === 0) {
        this.#index.delete(channel);
        continue;
      }
      const plain =
        !this.#schemas.has(channel) &&
        list.every(
          (r) => r.decoder === undefined && r.stopChannel !== channel && r.rawChannel !== channel,
        );
      this.#index.set(channel, { channel, recipients: list, plain });
    }
  }

  /** Who a notification on `channel` goes to now (a frozen view, for tests and stats). */
  recipientsOf(channel: string): readonly R[] {
    return this.#index.get(channel)?.recipients ?? [];
  }

  /** Resolves once every notification handed over so far has passed its schema and gone out. */
  async settled(): Promise<void> {
    while (this.#chain !== undefined) await this.#chain;
  }

  /** One notification as read from the server. */
  deliver(channel: string, raw: string, pid: number, receivedAt: number): void {
    let entry = this.#last;
    if (entry === undefined || entry.channel !== channel) {
      entry = this.#index.get(channel);
      if (entry === undefined) return;
      this.#last = entry;
    }
    if (!entry.plain || this.#chain !== undefined) {
      this.#deliverChecked(entry, raw, pid, receivedAt);
      return;
    }
    const notification = this.#decode(this.#decoder, entry.channel, raw, pid, receivedAt);
    if (notification === null) return;
    const recipients = entry.recipients;
    for (let i = 0; i < recipients.length; i++) (recipients[i] as R).deliver(notification);
    this.counters.delivered += recipients.length;
  }

  /** Channels with a schema, a per-subscriber decoder or a stop channel; arrival order kept. */
  #deliverChecked(entry: Entry<R>, raw: string, pid: number, receivedAt: number): void {
    if (this.#chain !== undefined) {
      this.#enqueue(() => this.#process(entry, raw, pid, receivedAt));
      return;
    }
    const pending = this.#process(entry, raw, pid, receivedAt);
    if (pending !== undefined) this.#enqueue(() => pending);
  }

  /** Keeps arrival order once an asynchronous schema is involved. */
  #enqueue(step: () => Promise<void> | undefined): void {
    this.#chainLength++;
    const run = async (): Promise<void> => {
      try {
        await step();
      } finally {
        if (--this.#chainLength === 0) this.#chain = undefined;
      }
    };
    this.#chain = (this.#chain ?? Promise.resolve()).then(run, run);
  }

  /** Decodes once per decoder, validates, delivers. Returns a promise only for async schemas. */
  #process(
    entry: Entry<R>,
    raw: string,
    pid: number,
    receivedAt: number,
  ): Promise<void> | undefined {
    const { channel, recipients } = entry;
    const schema = this.#schemas.get(channel);
    let shared: Notification | null | undefined;
    let custom: Map<DecodeFunction, Notification | null> | undefined;
    let waits: Promise<void>[] | undefined;
    for (const recipient of recipients) {
      if (recipient.stopChannel === channel || recipient.rawChannel === channel) {
        // A stop notification ends the subscription whatever its payload; a wake-up is
        // pgnotify's own: never decoded.
        recipient.deliver({ channel, payload: raw, raw, pid, receivedAt });
        continue;
      }
      const decoder = recipient.decoder;
      let notification: Notification | null | undefined;
      if (decoder === undefined) {
        shared ??= this.#decode(this.#decoder, channel, raw, pid, receivedAt);
        notification = shared;
      } else {
        custom ??= new Map();
        notification = custom.get(decoder);
        if (notification === undefined) {
          notification = this.#decode(decoder, channel, raw, pid, receivedAt);
          custom.set(decoder, notification);
        }
      }
      if (notification === null) continue;
      const checked = schema === undefined ? notification : this.#check(schema, notification);
      if (checked instanceof Promise) {
        waits ??= [];
        waits.push(checked.then((n) => this.#handOver(recipient, n)));
      } else this.#handOver(recipient, checked);
    }
    return waits === undefined ? undefined : Promise.all(waits).then(() => undefined);
  }

  #handOver(recipient: R, notification: Notification | null): void {
    if (notification === null) return;
    recipient.deliver(notification);
    this.counters.delivered++;
  }

  /** Validates a decoded notification once; null when it fails (reported). */
  #check(
    schema: Schema,
    notification: Notification,
  ): Notification | null | Promise<Notification | null> {
    const cached = this.#validated.get(notification);
    if (cached !== undefined) return cached;
    const finish = (result: Validated): Notification | null => {
      if (!result.ok) {
        this.counters.validationErrors++;
        this.#report(result.error);
        return null;
      }
      return result.value === notification.payload
        ? notification
        : { ...notification, payload: result.value };
    };
    const result = validate(schema, notification.payload, notification.channel);
    const out = result instanceof Promise ? result.then(finish) : finish(result);
    this.#validated.set(notification, out);
    return out;
  }

  #decode(
    decoder: DecodeFunction,
    channel: string,
    raw: string,
    pid: number,
    receivedAt: number,
  ): Notification | null {
    let payload: unknown;
    try {
      payload = decoder(raw, channel);
    } catch (cause) {
      this.counters.decodeErrors++;
      this.#report(
        new PgNotifyError(
          ErrorCode.DECODE_FAILED,
          `payload on ${JSON.stringify(channel)} could not be decoded: ${toError(cause).message}`,
          { cause, channel },
        ),
      );
      return null;
    }
    return { channel, payload, raw, pid, receivedAt };
  }
}
