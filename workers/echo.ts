/** Task `echo`: returns its input with the worker's thread id, or fails on request (pool tests, health). */
import { threadId } from 'node:worker_threads';
import { SvError, type SvErrorCode } from '../src/errors/index.js';
import type { EchoRequest, EchoResult } from './tasks.js';

export function echoTask(req: EchoRequest): EchoResult {
  if (req.failWith) throw new SvError(req.failWith.code as SvErrorCode, req.failWith.message, req.failWith.details ?? {});
  if (req.throwPlain !== undefined) throw new Error(req.throwPlain);
  return { value: req.value, threadId };
}
