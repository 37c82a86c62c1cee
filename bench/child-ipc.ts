/**
 * The IPC both sides of a workload that measures in a child process of its own (memory,
 * durable-catchup): the parent waits for a message by type, the child sends and collects
 * garbage before it samples memory.
 */
import type { ChildProcess } from 'node:child_process';

/** A message between a workload and its child: `type`, and `error` on type 'error'. */
export interface ChildMessage {
  readonly type: string;
  readonly error?: string;
}

/**
 * Resolves on the child's next message of `type`; rejects on an 'error' message or when the
 * child exits first. `who` names the child in those errors.
 */
export function nextMessage<M extends ChildMessage>(
  child: ChildProcess,
  type: M['type'],
  who: string,
): Promise<M> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: M): void => {
      if (message.type === 'error') {
        cleanup();
        reject(new Error(`${who}: ${message.error}`));
      } else if (message.type === type) {
        cleanup();
        resolve(message);
      }
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`${who} exited (code ${code}) before '${type}'`));
    };
    const cleanup = (): void => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** In the child: sends `message` to the parent while it is connected. */
export function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

/** In the child (run with --expose-gc): two full collections, so RSS says what is still held. */
export function fullGc(): void {
  gc();
  gc();
}
