/**
 * The shape of one catalogue entry. Every error the product raises has a stable code
 * `SV_ERR_<AREA>_<PROBLEM>`, an HTTP status (used when it reaches the admin API) and a one-line summary
 * that documents it (docs/ERRORS.md is generated from these summaries).
 */
export interface ErrorSpec {
  readonly status: number;
  readonly summary: string;
}

export type ErrorTable = Readonly<Record<string, ErrorSpec>>;
