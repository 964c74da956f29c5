import type { ErrorTable } from '../spec.js';

/** Errors of the NBD protocol code (src/nbd/): the codec, the client and (later) the server. */
export const NBD_ERRORS = {
  SV_ERR_NBD_CONNECT: { status: 502, summary: 'The NBD server could not be reached (connect failed); details name the address.' },
  SV_ERR_NBD_CLOSED: { status: 503, summary: 'The NBD connection was closed (by close(), by the peer, or reset) before the request completed.' },
  SV_ERR_NBD_TIMEOUT: { status: 504, summary: 'The NBD handshake or a request did not complete in time; the connection was closed.' },
  SV_ERR_NBD_PROTOCOL: { status: 502, summary: 'The NBD peer broke the protocol (bad magic, bad length, unknown cookie, unexpected chunk); the connection was closed.' },
  SV_ERR_NBD_TOO_LARGE: { status: 502, summary: 'The NBD peer announced a length or count above the limit this side accepts; the connection was closed.' },
  SV_ERR_NBD_UNSUPPORTED: { status: 502, summary: 'The NBD server lacks a feature this client needs (fixed newstyle, structured replies for block status).' },
  SV_ERR_NBD_OPTION_REFUSED: { status: 502, summary: 'The NBD server answered a handshake option with an error reply; details carry the option, reply type and message.' },
  SV_ERR_NBD_EXPORT_NOT_FOUND: { status: 404, summary: 'The NBD server has no export of that name (NBD_REP_ERR_UNKNOWN).' },
  SV_ERR_NBD_NO_META_CONTEXT: { status: 409, summary: 'The NBD server did not select a requested metadata context (e.g. no such dirty bitmap).' },
  SV_ERR_NBD_REQUEST_FAILED: { status: 502, summary: 'The NBD server answered a request with an error (NBD_EIO, ...); the connection stays usable.' },
  SV_ERR_NBD_BAD_REQUEST: { status: 400, summary: 'A read or block-status request is outside the export, misaligned, empty or too long.' },
  SV_ERR_NBD_LISTEN: { status: 409, summary: 'The NBD server could not listen on the address asked for (in use, not permitted, bad path); details name it.' },
  SV_ERR_NBD_TLS_CERT: { status: 400, summary: 'The TLS certificate or key for the NBD server cannot be read or is not valid PEM (or they do not match); details name the file.' },
  SV_ERR_NBD_BAD_EXPORT_OPTIONS: { status: 400, summary: 'An export was asked for with options that do not fit (e.g. --keep on a read-only export, a bad --listen address).' },
} as const satisfies ErrorTable;
