import type { ErrorTable } from '../spec.js';

/** Errors of the admin API (src/api/): routing, validation, authentication, roles. */
export const API_ERRORS = {
  SV_ERR_API_NOT_FOUND: { status: 404, summary: 'No route or no object with that id.' },
  SV_ERR_API_VALIDATION: { status: 400, summary: 'The request body, query or parameters do not match the route\'s JSON schema.' },
  SV_ERR_API_UNAUTHENTICATED: { status: 401, summary: 'No API token, or a token the appliance does not know.' },
  SV_ERR_API_FORBIDDEN: { status: 403, summary: 'The token\'s role may not use this route.' },
} as const satisfies ErrorTable;
