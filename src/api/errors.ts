/**
 * Error replies of the admin API: every error leaves as `{code, message, details}` with the status of its
 * catalogued code. Fastify's own errors (bad JSON, body too large, validation, unknown route) are mapped to
 * SV_ERR_API_* codes here so clients only ever see catalogued codes; so are the errors fastify and Node's
 * HTTP parser answer before any route runs (`serverErrorOptions`: malformed framing, bad URL encoding).
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { SvError, isSvError, wrapSystemError, type WireError } from '../errors/index.js';

const FASTIFY_CODES: Record<string, { code: 'SV_ERR_API_BAD_JSON' | 'SV_ERR_API_BODY_TOO_LARGE' | 'SV_ERR_API_UNSUPPORTED_MEDIA_TYPE' | 'SV_ERR_API_VALIDATION'; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'SV_ERR_API_BAD_JSON', message: 'request body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'SV_ERR_API_BAD_JSON', message: 'request body is empty but the content type is application/json' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'SV_ERR_API_BODY_TOO_LARGE', message: 'request body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'SV_ERR_API_UNSUPPORTED_MEDIA_TYPE', message: 'request body must be application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'SV_ERR_API_BAD_JSON', message: 'request body length does not match Content-Length' },
};

/** Turn anything thrown in a handler into a catalogued SvError. */
export function toApiError(err: unknown): SvError {
  if (isSvError(err)) return err;
  const fe = err as FastifyError;
  if (fe && typeof fe === 'object') {
    if (fe.validation) {
      const where = fe.validationContext ?? 'request';
      const first = fe.validation[0];
      const path = first ? `${where}${first.instancePath || ''}` : where;
      return new SvError('SV_ERR_API_VALIDATION', `${path} ${first?.message ?? 'is invalid'}`, {
        where,
        errors: fe.validation.map((v) => ({ path: v.instancePath, message: v.message ?? 'invalid', params: v.params })),
      });
    }
    const known = typeof fe.code === 'string' ? FASTIFY_CODES[fe.code] : undefined;
    if (known) return new SvError(known.code, known.message, {});
    if (fe.statusCode === 413) return new SvError('SV_ERR_API_BODY_TOO_LARGE', 'request body is too large', {});
    if (fe.statusCode === 415) return new SvError('SV_ERR_API_UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json', {});
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return new SvError('SV_ERR_API_VALIDATION', fe.message, { fastifyCode: fe.code ?? null });
    }
  }
  return wrapSystemError(err);
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) request.log.error({ err, code: e.code }, 'request failed');
    const body: WireError = e.toWire();
    if (e.status === 429 && typeof e.details.retryAfterSeconds === 'number') {
      void reply.header('retry-after', String(e.details.retryAfterSeconds));
    }
    void reply.status(e.status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new SvError('SV_ERR_API_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`, { method: request.method });
    void reply.status(404).send(e.toWire());
  });
}

/** What Node's HTTP parser reported on a connection (its `clientError` event), as a catalogued error. */
function clientErrorOf(err: NodeJS.ErrnoException): SvError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new SvError('SV_ERR_API_REQUEST_TIMEOUT', 'the request was not complete in time', {});
  if (err.code === 'HPE_HEADER_OVERFLOW') return new SvError('SV_ERR_API_HEADERS_TOO_LARGE', 'the request headers are too large', {});
  return new SvError('SV_ERR_API_BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse error'}: ${err.message})`, { parserError: err.code ?? null });
}

/**
 * Fastify server options that answer errors raised before routing with coded bodies: `clientErrorHandler`
 * (the connection's request could not be parsed: a coded reply written on the socket, then closed) and
 * `frameworkErrors` (bad URL encoding, over-long parameters).
 */
export const serverErrorOptions: Pick<FastifyServerOptions, 'clientErrorHandler' | 'frameworkErrors'> = {
  clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex) {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const e = clientErrorOf(err);
    const body = JSON.stringify(e.toWire());
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  },
  frameworkErrors(err: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
    const e = err.code === 'FST_ERR_BAD_URL' || err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new SvError('SV_ERR_API_BAD_REQUEST', err.message, { fastifyCode: err.code })
      : toApiError(err);
    void reply.status(e.status).send(e.toWire());
  },
};
