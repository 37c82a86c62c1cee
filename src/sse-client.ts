/**
 * One connected SSE client: where its bytes go (a node:http response or a web ReadableStream),
 * how much it has not read yet, and how it ends. A client whose backlog passes its limits is
 * ended with a final event instead of being buffered for: it never stalls anyone else.
 * Durable frames are paced instead ({@link SseClient.sendPaced}): their source (the client's
 * own journal read) waits for the client, which is ended only when it stops reading.
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
  /**
   * Queues a frame; `taken`, when given, runs once the peer has taken it (and all before it):
   * handed to the socket, or pulled from the stream (possibly before `write` returns).
   * Callbacks run in write order; once the sink is destroyed they may run or not.
   */
  write(frame: Frame, taken?: () => void): void;
  readonly queuedBytes: number;
  readonly queuedEvents: number;
  /** Ends after what is queued (and `last`). */
  end(last: string): void;
  /** Drops the connection now. */
  destroy(): void;
}

/** How long an ended stream may take to flush its final event before it is dropped. */
const END_GRACE_MS = 2000;
/** setTimeout's longest delay (longer ones fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
  write(frame: Frame, taken?: () => void): void {
    const ok =
      taken === undefined ? this.res.write(frame.bytes) : this.res.write(frame.bytes, taken);
    if (!ok) this.#backlogged = true;
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
  /** The `taken` callbacks of what is queued, run once a pull takes it. */
  #taken: (() => void)[] = [];
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
          this.#taken = [];
          onCancel();
        },
      },
      { highWaterMark: 0 },
    );
  }
  open(): void {}
  write(frame: Frame, taken?: () => void): void {
    if (this.#done || this.#ending) return;
    const bytes = frame.bytes;
    this.#queue.push(bytes);
    if (taken !== undefined) this.#taken.push(taken);
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
    this.#taken = [];
    this.#bytes = 0;
    this.#ending = true;
    this.#flush();
  }

  #flush(): void {
    if (this.#done) return;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    let taken: (() => void)[] | undefined;
    if (this.#queue.length > 0) {
      const chunk = this.#queue.length === 1 ? this.#queue[0] : Buffer.concat(this.#queue);
      this.#queue = [];
      this.#bytes = 0;
      if (this.#taken.length > 0) {
        taken = this.#taken;
        this.#taken = [];
      }
      if (chunk !== undefined) this.#controller.enqueue(chunk);
    }
    if (this.#ending) {
      this.#done = true;
      this.#controller.close();
    }
    waiting?.();
    if (taken !== undefined) for (const run of taken) run();
  }
}

/** The limits a client's backlog is held to. */
export interface ClientLimits {
  readonly maxQueuedEvents: number;
  readonly maxQueuedBytes: number;
  readonly retryMs: number;
  /** How long a paced stream waits for its client to take something before it is cut. */
  readonly stallTimeoutMs: number;
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
  /** Paced frames written, and how many of them the peer has taken (they are taken in order). */
  #pacedWritten = 0;
  #pacedTaken = 0;
  /** Set while a paced frame waits for the peer: resolves that wait. */
  #resume: (() => void) | undefined;
  /** Runs while paced and started: ends the client when it takes nothing for `stallTimeoutMs`. */
  #stall: NodeJS.Timeout | undefined;
  readonly #stalled = (): void => {
    const taken = this.#pacedTaken;
    // After a busy event loop, timers run before the I/O that may show progress: let it land.
    setImmediate(() => {
      if (this.#resume === undefined || this.#pacedTaken !== taken) return; // resumed or re-armed
      this.end('slow-client', `nothing read for ${this.limits.stallTimeoutMs} ms`);
    });
  };
  readonly #onTaken = (): void => {
    this.#pacedTaken++;
    if (this.#resume === undefined) return;
    if (this.#pacedTaken >= this.#pacedWritten) this.#wake();
    else this.#stall?.refresh(); // progress: the client is reading
  };

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
    // A paced frame that waited for the stream to open has been sent with the rest.
    if (this.#resume !== undefined && !this.gone) this.#wake();
  }

  /** Whether a paced frame waits for the client to read (its source is paused). */
  get paused(): boolean {
    return this.#resume !== undefined && this.#pending === undefined;
  }

  /**
   * Sends one frame of a source that can wait (a durable stream's own journal read): never
   * ends the client for its backlog. While the backlog is at or above half a limit
   * (`maxQueuedBytes / 2`, `maxQueuedEvents / 2`, the other half left for live frames and
   * heartbeats), returns a promise that resolves once the client has taken this frame (or is
   * gone): the caller sends nothing more meanwhile. A client that takes nothing for
   * `stallTimeoutMs` while waited for is ended as `'slow-client'`. Before the stream opens,
   * the frame waits in memory and the promise resolves when it opens.
   */
  sendPaced(frame: Frame): Promise<void> | undefined {
    if (this.gone) return undefined;
    const pending = this.#pending;
    if (pending !== undefined) {
      pending.push(frame);
      return this.#wait();
    }
    const sink = this.sink;
    const limits = this.limits;
    this.#pacedWritten++;
    sink.write(frame, this.#onTaken);
    if (this.#pacedTaken >= this.#pacedWritten) return undefined;
    if (
      sink.queuedBytes * 2 < limits.maxQueuedBytes &&
      sink.queuedEvents * 2 < limits.maxQueuedEvents
    )
      return undefined;
    const waiting = this.#wait();
    this.#stall = setTimeout(this.#stalled, Math.min(limits.stallTimeoutMs, MAX_TIMER_MS));
    this.#stall.unref();
    return waiting;
  }

  /** Queues one frame; a client past its limits is ended as `'slow-client'` (see also sendPaced). */
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
   * Ends the stream with a final `event: end` saying why (after what is queued; `code` goes in
   * its data when given), and drops the connection if that has not flushed within a grace
   * period. Cleanup runs at once.
   */
  end(reason: SseEndReason, message: string, retryMs = this.limits.retryMs, code?: string): void {
    if (this.gone) return;
    this.#leave(reason);
    if (this.#pending !== undefined) {
      // Not opened yet: nothing was sent, there is no stream to end.
      this.#pending = undefined;
      return;
    }
    this.sink.end(endFrame(reason, message, retryMs, code));
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
    this.#wake();
    this.onGone(this, reason);
  }

  #wait(): Promise<void> {
    return new Promise<void>((resolve) => {
      const before = this.#resume; // callers wait one at a time; never strand one that did not
      this.#resume =
        before === undefined
          ? resolve
          : () => {
              before();
              resolve();
            };
    });
  }

  /** Ends a wait for the client (it took the frame, the stream opened, or it is gone). */
  #wake(): void {
    clearTimeout(this.#stall);
    this.#stall = undefined;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }
}
