// The browser bridge as an Express route: `DATABASE_URL=postgres://… PORT=3000 node --import tsx
// examples/sse-express.ts`. The handler is an ordinary (req, res, next) middleware.
// test/sse-examples.test.ts starts it, connects, and receives one notification.
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createListener } from 'pgnotify';
import { createSseHandler } from 'pgnotify/sse';

const channel = process.env.SSE_CHANNEL ?? 'orders';
const listener = createListener({ connection: process.env.DATABASE_URL });
await listener.start();

const sse = createSseHandler(listener, {
  // Per-channel authorization, before anything is streamed: a 401 without a session.
  authorize: (request, name) =>
    request.headers.get('authorization') === 'Bearer demo' && name === channel
      ? true
      : { status: 401, reason: 'log in first' },
});
const app = express();
app.get('/events', sse);

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}/events?channel=${channel} (Bearer demo)`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    await sse.close();
    server.close();
    await listener.stop();
  });
}
