/**
 * Test helpers for the SSE bridge: a raw HTTP/1.1 client on a plain socket (so the bytes on the
 * wire are seen exactly, chunked encoding removed, and reading can be stopped), an SSE event
 * parser, and a listener + node:http server around a handler.
 */
import http from 'node:http';
import net from 'node:net';
import { createListener, type Listener } from '../../src/index.js';
import { createSseHandler, type SseHandler, type SseOptions } from '../../src/sse.js';
import { databaseUrl, waitFor } from './db.js';

/** One parsed event (fields as EventSource reads them; comments are counted apart). */
export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
  retry: number | undefined;
}

/** Parses complete SSE blocks from `text` (per the HTML spec's field rules). */
export function parseEvents(text: string): { events: SseEvent[]; comments: number } {
  const events: SseEvent[] = [];
  let comments = 0;
  const blocks = text.split('\n\n');
  blocks.pop(); // an incomplete trailing block
  for (const block of blocks) {
    const event: SseEvent = { event: 'message', data: '', id: undefined, retry: undefined };
    let fields = 0;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        comments++;
        continue;
      }
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      fields++;
      if (name === 'event') event.event = value;
      else if (name === 'data') data.push(value);
      else if (name === 'id') event.id = value;
      else if (name === 'retry') event.retry = Number(value);
    }
    event.data = data.join('\n');
    if (fields > 0) events.push(event);
  }
  return { events, comments };
}

/** A streaming GET on a raw socket. `body` is the de-chunked body received so far. */
export class RawSse {
  status = 0;
  headers: Record<string, string> = {};
  head = '';
  body = '';
  /** Body bytes received, and SSE blocks completed (a blank line: events and comments). */
  received = 0;
  blocks = 0;
  ended = false;
  #lastLf = false;
  #buffer = Buffer.alloc(0);
  #inBody = false;
  #chunked = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (data: Buffer) => this.#onData(data));
    socket.on('close', () => {
      this.ended = true;
    });
    socket.on('error', () => undefined);
  }

  /** Connects and sends `GET target` with `headers`; resolves once the response head arrived. */
  static async open(
    port: number,
    target: string,
    headers: Record<string, string> = {},
    method = 'GET',
  ): Promise<RawSse> {
    const socket = net.connect(port, '127.0.0.1');
    const client = new RawSse(socket);
    const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Accept: text/event-stream'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    await waitFor(() => client.status !== 0 || client.ended, { message: `response to ${target}` });
    return client;
  }

  /** Opens `target` and waits until the server ended the response (a refusal, or a short stream). */
  static async openToEnd(
    port: number,
    target: string,
    headers: Record<string, string> = {},
  ): Promise<RawSse> {
    const client = await RawSse.open(port, target, headers);
    await waitFor(() => client.ended, { message: `the end of the response to ${target}` });
    return client;
  }

  get events(): SseEvent[] {
    return parseEvents(this.body).events;
  }

  get comments(): number {
    return parseEvents(this.body).comments;
  }

  /** Waits until `n` events (comments excluded) arrived, and returns them. */
  async waitEvents(n: number, timeoutMs = 5000): Promise<SseEvent[]> {
    return waitFor(() => this.events.length >= n && this.events, {
      timeoutMs,
      message: `${n} event(s); body so far: ${JSON.stringify(this.body.slice(-500))}`,
    });
  }

  close(): void {
    this.socket.destroy();
  }

  #onData(data: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, data]);
    if (!this.#inBody) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.#buffer.subarray(0, end).toString('latin1');
      this.#buffer = this.#buffer.subarray(end + 4);
      const [statusLine, ...rest] = this.head.split('\r\n');
      this.status = Number(statusLine?.split(' ')[1]);
      for (const line of rest) {
        const at = line.indexOf(':');
        this.headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      this.#chunked = this.headers['transfer-encoding'] === 'chunked';
      this.#inBody = true;
    }
    if (!this.#chunked) {
      this.#append(this.#buffer);
      this.#buffer = Buffer.alloc(0);
      return;
    }
    for (;;) {
      const lineEnd = this.#buffer.indexOf('\r\n');
      if (lineEnd < 0) return;
      const size = Number.parseInt(this.#buffer.subarray(0, lineEnd).toString('latin1'), 16);
      if (this.#buffer.length < lineEnd + 2 + size + 2) return;
      this.#append(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      this.#buffer = this.#buffer.subarray(lineEnd + 2 + size + 2);
      if (size === 0) this.ended = true;
    }
  }

  #append(bytes: Buffer): void {
    this.received += bytes.length;
    for (const byte of bytes) {
      const lf = byte === 10;
      if (lf && this.#lastLf) this.blocks++;
      this.#lastLf = lf;
    }
    this.body += bytes.toString('utf8');
  }
}

/** A started listener, a handler on it and a node:http server; `close()` undoes all three. */
export interface Bridge {
  listener: Listener;
  sse: SseHandler;
  server: http.Server;
  port: number;
  /** Every response the server handed to the handler, in arrival order. */
  responses: http.ServerResponse[];
  close(): Promise<void>;
}

/** Starts a listener on this pass's server and serves `createSseHandler(listener, options)`. */
export async function startBridge(options: SseOptions): Promise<Bridge> {
  const listener = createListener({
    connection: databaseUrl(),
    applicationName: 'pgnotify-sse-test',
  });
  await listener.start();
  const sse = createSseHandler(listener, options);
  const responses: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    responses.push(res);
    sse(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    listener,
    sse,
    server,
    port,
    responses,
    async close() {
      await sse.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await listener.stop();
    },
  };
}
