// The browser bridge in Hono (the fetch form, as in Next.js route handlers, Bun or Deno):
// `DATABASE_URL=postgres://… PORT=3000 node --import tsx examples/sse-hono.ts`.
// test/sse-examples.test.ts starts it, connects, and receives one notification.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createListener } from 'pgnotify';
import { createSseHandler } from 'pgnotify/sse';

const channel = process.env.SSE_CHANNEL ?? 'orders';
const listener = createListener({ connection: process.env.DATABASE_URL });
await listener.start();

const sse = createSseHandler(listener, { channels: [channel] });
const app = new Hono();
app.get('/events', (c) => sse.fetch(c.req.raw));

const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' },
  (info: AddressInfo) =>
    console.log(`listening on http://127.0.0.1:${info.port}/events?channel=${channel}`),
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    await sse.close();
    server.close();
    await listener.stop();
  });
}
