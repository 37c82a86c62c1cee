/**
 * Compile-time checks of route(): the data type of each action is inferred, from a
 * discriminated payload under the default dispatcher or from an actions map, with no type
 * argument; a misspelt action does not compile. Never run (see expect.ts).
 */
import {
  type ActionMap,
  createListener,
  type Dispatched,
  type DispatchFunction,
  type Listener,
  type Notification,
  type PayloadActions,
  type Route,
} from '../../src/index.js';
import { assertType, type Equal, expectType } from './expect.js';

type Job =
  | { action: 'resize'; data: { url: string } }
  | { action: 'delete'; data: { id: number } }
  | { action: 'ping' };
type Channels = { jobs: Job; text: string; loose: { action: string; data?: number } };

/** Never called: type positions only. */
export function discriminatedPayloadChecks(listener: Listener<Channels>): void {
  const jobs = listener.route('jobs');
  expectType<Route<Job, { resize: { url: string }; delete: { id: number }; ping: undefined }>>()(
    jobs,
  );
  jobs.on('resize', (data) => expectType<{ url: string }>()(data));
  jobs.on('resize', (data) => data.url.toUpperCase());
  jobs.on('delete', (data, n) => {
    expectType<number>()(data.id);
    expectType<Notification<Job>>()(n);
  });
  jobs.on('ping', (data) => expectType<undefined>()(data));
  // Chained calls keep the types.
  jobs.on('resize', (data) => data.url).on('delete', (data) => data.id);

  // @ts-expect-error a misspelt action
  jobs.on('resise', (data) => data);
  // @ts-expect-error the data of 'delete' has no url
  jobs.on('delete', (data) => data.url);
  // @ts-expect-error naming the data type is for open routes only
  jobs.on<{ url: string }>('resize', () => {});

  // Options without a dispatcher keep the inferred actions.
  const withOptions = listener.route('jobs', { concurrency: 2, onGap: () => {} });
  withOptions.on('resize', (data) => data.url);
  // @ts-expect-error a misspelt action
  withOptions.on('resise', () => {});

  // A payload whose action is any string: every action, with its data.
  const loose = listener.route('loose');
  loose.on('whatever', (data) => expectType<number | undefined>()(data));

  // A payload without `action`: the default dispatcher rejects it, the route stays open.
  listener.route('text').on('x', (data) => expectType<unknown>()(data));

  assertType<Equal<PayloadActions<unknown>, { [action: string]: unknown }>>();
}

type JobActions = { resize: { url: string }; delete: { id: number } };

/** Never called: an actions map types a custom dispatcher's route. */
export function actionMapChecks(listener: Listener<Channels>): void {
  // A dispatcher annotated with the map.
  const dispatch: DispatchFunction<string, Notification<string>, JobActions> = (text) => {
    const [action, rest = ''] = text.split(':');
    if (action === 'resize') return ['resize', { url: rest }];
    if (action === 'delete') return ['delete', { id: Number(rest) }];
    return undefined;
  };
  const text = listener.route('text', { dispatch });
  expectType<Route<string, JobActions>>()(text);
  text.on('resize', (data) => data.url).on('delete', (data) => data.id);
  // @ts-expect-error a misspelt action
  text.on('resise', () => {});

  // A dispatcher that returns Dispatched<map>.
  const inline = listener.route('text', {
    dispatch: (t): Dispatched<JobActions> | undefined =>
      t === '' ? undefined : ['delete', { id: t.length }],
  });
  inline.on('delete', (data) => expectType<number>()(data.id));
  // @ts-expect-error not in the map
  inline.on('create', () => {});

  // as const tuples.
  const tuples = listener.route('text', {
    dispatch: (t) => (t.startsWith('a') ? (['add', t.length] as const) : (['drop', t] as const)),
  });
  tuples.on('add', (data) => expectType<number>()(data));
  tuples.on('drop', (data) => expectType<string>()(data));
  // @ts-expect-error not returned by the dispatcher
  tuples.on('other', () => {});
}

/** Never called: an untyped listener's routes are open, as before. */
export function untypedRouteChecks(): void {
  const listener = createListener();
  const jobs = listener.route('jobs');
  expectType<Route<unknown, ActionMap>>()(jobs);
  jobs.on('anything', (data) => expectType<unknown>()(data));
  jobs.on<{ name: string }>('new_user', (user) => user.name);
  // A custom dispatcher over unknown payloads.
  listener
    .route('jobs', { dispatch: (p) => ['one', String(p)] })
    .on('one', (data) => expectType<string>()(data));
}
