import type { ErrorTable } from '../spec.js';

/** Errors of disk sources (src/sources/): references, the opener registry, the sources' own contract. */
export const SOURCE_ERRORS = {
  SV_ERR_SOURCE_BAD_REF: { status: 400, summary: 'A disk source reference is malformed (unknown kind, missing or wrongly typed field); details name the field.' },
  SV_ERR_SOURCE_NO_OPENER: { status: 500, summary: 'No opener is registered for this kind of disk source in this process or thread (e.g. an agent source outside the appliance).' },
  SV_ERR_SOURCE_BAD_RANGE: { status: 400, summary: 'A block range asked of a disk source is not block-aligned, empty, or outside the disk.' },
  SV_ERR_SOURCE_CLOSED: { status: 409, summary: 'The disk source was closed (or its connection went away) before the call.' },
} as const satisfies ErrorTable;
