/**
 * One connected SSE client: where its bytes go (a node:http response or a web ReadableStream),
 * how much it has not read yet, and how it ends. A client whose backlog passes its limits is
 * ended with a final event instead of being buffered for: it never stalls anyone else.
 */
import type { ServerResponse } from 'node:http';
import { endFrame, type SseEndReason } from './sse-wire.js';

/** One frame, encoded once and shared by every client it goes to. */
export class Frame {
  constructor(readonly bytes: Buffer) {}
  static of(text: string): Frame {
    return new Frame(Buffer.from(text));
  }
}

/** What a client writes to. `queued*` count what the peer has not taken yet. */
export interface Sink {
  /** Sends the status line and headers (node:http); the web form puts them on its Response. */
  open(headers: Readonly<Record<string, string>>): void;
  write(frame: Frame): void;
  readonly queuedBytes: number;
  readonly queuedEvents: number;
  /** Ends after what is queued (and `last`). */
  end(last: string): void;
  /** Drops the connection now. */
  destroy(): void;
}

/** How long an ended stream may take to flush its final event before it is dropped. */
const END_GRACE_MS = 2000;

/**
 * A node:http response as a sink. Its backlog is Node's buffer (`writableLength`).
 * (Writing prebuilt HTTP chunks straight to the socket was tried: bench/sse.ts measured it
 * dearer than `res.write`, with seconds of latency at 1 000 clients.)
 */
export class NodeSink implements Sink {
  #backlogged = false;
  #queuedEvents = 0;
  constructor(private readonly res: ServerResponse) {
    res.on('drain', () => {
      this.#backlogged = false;
      this.#queuedEvents = 0;
    });
  }
  open(headers: Readonly<Record<string, string>>): void {
    this.res.writeHead(200, headers);
  }
  write(frame: Frame): void {
    if (!this.res.write(frame.bytes)) this.#backlogged = true;
    if (this.#backlogged) this.#queuedEvents++;
  }
  get queuedBytes(): number {
    return this.res.writableLength;
  }
  get queuedEvents(): number {
    return this.#queuedEvents;
  }
  end(last: string): void {
    this.res.end(last);
  }
  destroy(): void {
    this.res.destroy();
  }
}

/**
 * A web `ReadableStream` as a sink. Chunks wait in this sink's own queue until the consumer
 * pulls (high-water mark 0), so the backlog is exact; one pull takes everything queued.
 */
export class WebSink implements Sink {
  readonly stream: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #queue: Uint8Array[] = [];
  #bytes = 0;
  #waiting: (() => void) | undefined;
  #ending = false;
  #done = false;

  constructor(onCancel: () => void) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => {
          if (this.#queue.length > 0) this.#flush();
          else if (!this.#done) return new Promise<void>((resolve) => (this.#waiting = resolve));
          return undefined;
        },
        cancel: () => {
          this.#done = true;
          this.#queue = [];
          onCancel();
        },
      },
      { highWaterMark: 0 },
    );
  }
  open(): void {}
  write(frame: Frame): void {
    if (this.#done || this.#ending) return;
    const bytes = frame.bytes;
    this.#queue.push(bytes);
    this.#bytes += bytes.byteLength;
    if (this.#waiting !== undefined) this.#flush();
  }
  get queuedBytes(): number {
    return this.#bytes;
  }
  get queuedEvents(): number {
    return this.#queue.length;
  }
  end(last: string): void {
    this.write(Frame.of(last));
    this.#ending = true;
    if (this.#waiting !== undefined || this.#queue.length === 0) this.#flush();
  }
  destroy(): void {
    this.#queue = [];
    this.#bytes = 0;
    this.#ending = true;
    this.#flush();
  }

  #flush(): void {
    if (this.#done) return;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (this.#queue.length > 0) {
      const chunk = this.#queue.length === 1 ? this.#queue[0] : Buffer.concat(this.#queue);
      this.#queue = [];
      this.#bytes = 0;
      if (chunk !== undefined) this.#controller.enqueue(chunk);
    }
    if (this.#ending) {
      this.#done = true;
      this.#controller.close();
    }
    waiting?.();
  }
}

/** The limits a client's backlog is held to. */
export interface ClientLimits {
  readonly maxQueuedEvents: number;
  readonly maxQueuedBytes: number;
  readonly retryMs: number;
}

/**
 * One stream. Until `start()`, what is sent waits in memory (bounded like the backlog): the
 * stream opens only once every channel is listened to, so nothing sent after `open` is missed.
 */
export class SseClient {
  /** Set once the stream ended or the peer left; `onGone` has run. */
  gone = false;
  #pending: Frame[] | undefined = [];
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param live the channels served from the shared live subscriptions (a connection gap
   *   concerns only them)
   * @param onGone runs once, at once, when the client leaves or is ended
   */
  constructor(
    readonly sink: Sink,
    readonly channels: readonly string[],
    readonly live: readonly string[],
    private readonly limits: ClientLimits,
    private readonly onGone: (client: SseClient, reason: SseEndReason | 'left') => void,
  ) {}

  /** Sends the headers and the first frame, then whatever arrived while opening. */
  start(headers: Readonly<Record<string, string>>, first: string): void {
    if (this.gone) return;
    const pending = this.#pending ?? [];
    this.#pending = undefined;
    this.sink.open(headers);
    this.sink.write(Frame.of(first));
    for (const frame of pending) this.send(frame);
  }

  /** Queues one frame; a client past its limits is ended as `'slow-client'`. */
  send(frameOrText: Frame | string): void {
    if (this.gone) return;
    const chunk = typeof frameOrText === 'string' ? Frame.of(frameOrText) : frameOrText;
    const pending = this.#pending;
    if (pending !== undefined) {
      pending.push(chunk);
      if (pending.length > this.limits.maxQueuedEvents)
        this.end('slow-client', 'too many events queued while opening');
      return;
    }
    const sink = this.sink;
    sink.write(chunk);
    if (sink.queuedEvents > this.limits.maxQueuedEvents) {
      this.end('slow-client', `more than ${this.limits.maxQueuedEvents} events queued`);
    } else if (sink.queuedBytes > this.limits.maxQueuedBytes) {
      this.end('slow-client', `more than ${this.limits.maxQueuedBytes} bytes queued`);
    }
  }

  /**
   * Ends the stream with a final `event: end` saying why (after what is queued), and drops
   * the connection if that has not flushed within a grace period. Cleanup runs at once.
   */
  end(reason: SseEndReason, message: string, retryMs = this.limits.retryMs): void {
    if (this.gone) return;
    this.#leave(reason);
    if (this.#pending !== undefined) {
      // Not opened yet: nothing was sent, there is no stream to end.
      this.#pending = undefined;
      return;
    }
    this.sink.end(endFrame(reason, message, retryMs));
    this.#timer = setTimeout(() => this.sink.destroy(), END_GRACE_MS);
    this.#timer.unref();
  }

  /** The peer went away (socket closed, stream cancelled). */
  closed(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#leave('left');
  }

  #leave(reason: SseEndReason | 'left'): void {
    if (this.gone) return;
    this.gone = true;
    this.#pending = undefined;
    this.onGone(this, reason);
  }
}
