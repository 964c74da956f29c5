import type { ErrorTable } from '../spec.js';

/** Errors that belong to no single area: arguments, internal faults, the environment. */
export const CORE_ERRORS = {
  SV_ERR_CORE_INTERNAL: { status: 500, summary: 'An unexpected internal fault; the message and cause say where.' },
  SV_ERR_CORE_INVALID_ARGUMENT: { status: 400, summary: 'A caller passed a value outside what the function accepts.' },
  SV_ERR_CORE_IO: { status: 500, summary: 'An operating-system I/O call failed; the cause holds the system error.' },
  SV_ERR_CORE_NO_SPACE: { status: 507, summary: 'The file system is full (ENOSPC); nothing committed was changed.' },
  SV_ERR_CORE_CANCELLED: { status: 409, summary: 'The operation was cancelled before it finished; nothing was committed.' },
} as const satisfies ErrorTable;
