/** Assertions on pgnotify's coded errors, shared by the test files. */
import assert from 'node:assert/strict';
import { PgNotifyError } from '../../src/errors.js';

/** Asserts that `fn` throws a PgNotifyError with `code`, and returns it. */
export function throwsCode(fn: () => unknown, code: string): PgNotifyError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PgNotifyError, `expected a PgNotifyError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

/** A predicate for `assert.rejects` and `Array#filter`: a PgNotifyError with `code`. */
export function isCode(code: string): (error: unknown) => boolean {
  return (error: unknown): boolean => error instanceof PgNotifyError && error.code === code;
}
