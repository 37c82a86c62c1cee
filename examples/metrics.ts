// The samples of docs/observability.md, as one program that runs and exits by itself:
// `node --import tsx examples/metrics.ts` in a clone (DATABASE_URL or the PG* variables name
// the server). It feeds stats() and the diagnostics_channel events to Prometheus (prom-client,
// served as text on /metrics) and to OpenTelemetry metrics, sends one notification and one
// that makes the handler throw, then prints what each side exposes.
import diagnostics_channel from 'node:diagnostics_channel';
import { createServer } from 'node:http';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  createListener,
  createNotifier,
  DiagnosticsChannel,
  type DiagnosticsMessages,
} from 'pgnotify';
import client from 'prom-client';

type Channels = { orders: { id: number } };
const listener = createListener<Channels>({
  connection: process.env.DATABASE_URL,
  onError: (error) => console.log('onError:', error.code),
});

// --- prometheus ---
const registry = new client.Registry();
// Counters read from stats() at scrape time: stats() is cheap, a snapshot of plain numbers.
const counters = {
  received: 'notifications read from the server',
  delivered: 'deliveries to subscribers',
  dropped: 'notifications lost to buffer overflow',
  handlerErrors: 'handler calls that threw or rejected',
  reconnects: 'completed reconnections',
} as const;
for (const [field, help] of Object.entries(counters)) {
  const name = `pgnotify_${field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
  new client.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(listener.stats()[field as keyof typeof counters]);
    },
  });
}
new client.Gauge({
  name: 'pgnotify_up',
  help: '1 while the listener is connected and listening',
  registers: [registry],
  collect() {
    this.set(listener.state === 'listening' ? 1 : 0);
  },
});
new client.Gauge({
  name: 'pgnotify_buffered',
  help: 'notifications waiting in subscription buffers',
  registers: [registry],
  collect() {
    this.set(listener.stats().subscribers.reduce((n, s) => n + s.buffered, 0));
  },
});
// Events with no counter in stats(): errors by code, and the gaps' downtime.
const errors = new client.Counter({
  name: 'pgnotify_errors_total',
  help: 'errors handed to onError, by code',
  labelNames: ['code'],
  registers: [registry],
});
const downtime = new client.Histogram({
  name: 'pgnotify_gap_seconds',
  help: 'outages reported as gaps (notifications sent meanwhile were lost)',
  registers: [registry],
});
diagnostics_channel.subscribe(DiagnosticsChannel.ERROR, (message) => {
  const { error } = message as DiagnosticsMessages['pgnotify:listener:error'];
  errors.inc({ code: error.code });
});
diagnostics_channel.subscribe(DiagnosticsChannel.GAP, (message) => {
  const { gap } = message as DiagnosticsMessages['pgnotify:listener:gap'];
  if (gap.kind === 'gap') downtime.observe(gap.downtimeMs / 1000);
});
// The text exposition endpoint Prometheus scrapes.
const server = createServer(async (_request, response) => {
  response.setHeader('Content-Type', registry.contentType);
  response.end(await registry.metrics());
});
// --- end prometheus ---

// --- opentelemetry ---
// Your SDK setup: here a reader collected on demand, in production an OTLP or Prometheus exporter.
class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}
const reader = new OnDemandReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

const meter = metrics.getMeter('pgnotify');
const received = meter.createObservableCounter('pgnotify.notifications.received');
const delivered = meter.createObservableCounter('pgnotify.notifications.delivered');
const dropped = meter.createObservableCounter('pgnotify.notifications.dropped');
const up = meter.createObservableGauge('pgnotify.up');
meter.addBatchObservableCallback(
  (result) => {
    const stats = listener.stats(); // one snapshot per collection
    result.observe(received, stats.received);
    result.observe(delivered, stats.delivered);
    result.observe(dropped, stats.dropped);
    result.observe(up, stats.state === 'listening' ? 1 : 0);
  },
  [received, delivered, dropped, up],
);
const otelErrors = meter.createCounter('pgnotify.errors');
diagnostics_channel.subscribe(DiagnosticsChannel.ERROR, (message) => {
  const { error } = message as DiagnosticsMessages['pgnotify:listener:error'];
  otelErrors.add(1, { 'error.code': error.code });
});
const gapDuration = meter.createHistogram('pgnotify.gap.duration', { unit: 'ms' });
diagnostics_channel.subscribe(DiagnosticsChannel.GAP, (message) => {
  const { gap } = message as DiagnosticsMessages['pgnotify:listener:gap'];
  if (gap.kind === 'gap') gapDuration.record(gap.downtimeMs);
});
// --- end opentelemetry ---

await listener.subscribe('orders', (n) => {
  if (n.payload.id === 2) throw new Error('order 2 is broken');
});
await listener.start();
const notifier = createNotifier<Channels>({ connection: process.env.DATABASE_URL });
await notifier.notify('orders', { id: 1 });
await notifier.notify('orders', { id: 2 });
await notifier.close();
await listener.drain(); // both handled (and the error reported) before we look

await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as { port: number };
const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
for (const line of text.split('\n')) {
  if (/^pgnotify_(received|delivered|handler_errors|up|errors)/.test(line)) console.log(line);
}
server.close();

const { resourceMetrics } = await reader.collect();
for (const metric of resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)) {
  for (const point of metric.dataPoints) {
    const attributes = Object.entries(point.attributes).map(([k, v]) => `${k}=${String(v)}`);
    console.log('otel', metric.descriptor.name, attributes.join(',') || '-', point.value);
  }
}

await listener.stop();
console.log('metrics example done');
