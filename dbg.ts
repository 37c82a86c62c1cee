import pg from 'pg';
import { createListener } from './src/index.js';
import { installSchema } from './src/journal.js';
import { appendDurableBatch } from './src/journal-write.js';

const url = 'postgres://root@127.0.0.1:5432/wt_durlisten';
const schema = 'dbg_y';
const pool = new pg.Pool({ connectionString: url });
await pool.query(`drop schema if exists ${schema} cascade`);
await installSchema({ client: pool, schema });
const l = createListener({
  connection: url,
  decode: 'text',
  onError: (e) => console.log('E', e.message),
});
await l.start();
let n = 0;
await l.subscribe(
  'c1',
  () => {
    n++;
  },
  { durable: { consumer: 'x', startAt: 'start', schema } },
);
let stop = false;
const w = (async () => {
  let i = 0;
  while (!stop) {
    await appendDurableBatch(pool, 'c1', [String(i++)], schema);
  }
})();
const show = async (what: string) =>
  console.log(what, n, (await pool.query(`select seq,id from ${schema}.consumers`)).rows);
await new Promise((r) => setTimeout(r, 500));
await show('before');
await pool.query('select pg_terminate_backend($1)', [l.pid]);
for (let k = 0; k < 5; k++) {
  await new Promise((r) => setTimeout(r, 400));
  await show('after');
}
stop = true;
await w;
await l.stop();
await show('stopped');
await pool.end();
