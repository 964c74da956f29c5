import type { ErrorTable } from '../spec.js';

/** Errors of the admin API (src/api/): routing, validation, authentication, roles. */
export const API_ERRORS = {
  SV_ERR_API_NOT_FOUND: { status: 404, summary: 'No route or no object with that id.' },
  SV_ERR_API_BAD_REQUEST: { status: 400, summary: 'The HTTP request itself is malformed (framing, headers, URL encoding); the connection is closed.' },
  SV_ERR_API_REQUEST_TIMEOUT: { status: 408, summary: 'The client did not send a complete request in time; the connection is closed.' },
  SV_ERR_API_HEADERS_TOO_LARGE: { status: 431, summary: 'The request\'s headers are larger than the server accepts; the connection is closed.' },
  SV_ERR_API_VALIDATION: { status: 400, summary: 'The request body, query or parameters do not match the route\'s JSON schema.' },
  SV_ERR_API_UNAUTHENTICATED: { status: 401, summary: 'No API token, or a token the appliance does not know.' },
  SV_ERR_API_FORBIDDEN: { status: 403, summary: 'The token\'s role may not use this route.' },
  SV_ERR_API_BAD_JSON: { status: 400, summary: 'The request body is not valid JSON.' },
  SV_ERR_API_BODY_TOO_LARGE: { status: 413, summary: 'The request body is larger than the appliance accepts.' },
  SV_ERR_API_UNSUPPORTED_MEDIA_TYPE: { status: 415, summary: 'The request body has a content type other than application/json.' },
  SV_ERR_API_RATE_LIMITED: { status: 429, summary: 'Too many failed authentications from this address; wait and retry (Retry-After).' },
  SV_ERR_API_CONFLICT: { status: 409, summary: 'The change conflicts with existing objects (duplicate name, object still in use).' },
  SV_ERR_API_SOURCE_HAS_POINTS: { status: 409, summary: 'The store already holds recovery points under this data source name (a source of that name was removed): add it with `attach` (CLI --attach) to continue that series, or choose another name.' },
  SV_ERR_API_PATH_NOT_ALLOWED: { status: 403, summary: 'A restore target or source path lies outside the folders the appliance may use.' },
  SV_ERR_API_TOO_MANY_DOWNLOADS: { status: 429, summary: 'Too many image downloads running, for this API token or for the appliance (serve --max-downloads-per-token, --max-downloads); retry after Retry-After seconds.' },
  SV_ERR_API_RANGE_NOT_SATISFIABLE: { status: 416, summary: 'The Range of a download starts past the end of the image (the reply\'s Content-Range gives its length).' },
  SV_ERR_API_REMOTE: { status: 502, summary: 'The CLI could not talk to the appliance at --url (connection refused, TLS, bad reply).' },
} as const satisfies ErrorTable;
