// The browser bridge on plain node:http: `DATABASE_URL=postgres://… PORT=3000 node --import tsx
// examples/sse-node-http.ts`, then in a browser: new EventSource('/events?channel=orders').
// test/sse-examples.test.ts starts it, connects, and receives one notification.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createListener } from 'pgnotify';
import { createSseHandler } from 'pgnotify/sse';

const channel = process.env.SSE_CHANNEL ?? 'orders';
const listener = createListener({ connection: process.env.DATABASE_URL });
await listener.start(); // one backend, whatever the number of browsers

const sse = createSseHandler(listener, { channels: [channel], path: '/events' });
const server = http.createServer(sse); // other paths get 404
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://127.0.0.1:${port}/events?channel=${channel}`);
});

// Clean shutdown: every stream gets `event: end` and reconnects elsewhere.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    await sse.close();
    server.close();
    await listener.stop();
  });
}
