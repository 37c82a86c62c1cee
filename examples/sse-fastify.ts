// The browser bridge in Fastify: `DATABASE_URL=postgres://… PORT=3000 node --import tsx
// examples/sse-fastify.ts`. The route hands the raw node:http request and response over.
// test/sse-examples.test.ts starts it, connects, and receives one notification.
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { createListener } from 'pgnotify';
import { createSseHandler } from 'pgnotify/sse';

const channel = process.env.SSE_CHANNEL ?? 'orders';
const listener = createListener({ connection: process.env.DATABASE_URL });
await listener.start();

const sse = createSseHandler(listener, { channels: [channel] });
const app = Fastify();
app.get('/events', (request, reply) => {
  reply.hijack(); // the bridge writes the response itself
  sse(request.raw, reply.raw);
});

await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
const { port } = app.server.address() as AddressInfo;
console.log(`listening on http://127.0.0.1:${port}/events?channel=${channel}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    await sse.close();
    await app.close();
    await listener.stop();
  });
}
