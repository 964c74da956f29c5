/**
 * The options of commands that run against a store or an appliance (`--url`, `--token-file`) and the rule that
 * picks one, without the appliance client (remote.ts, remote-store.ts): a command run on a local store loads
 * neither.
 */

/** Options every remote-capable command accepts (spread into its parseCommandArgs options). */
export const REMOTE_OPTIONS = {
  url: { type: 'string' },
  'token-file': { type: 'string' },
} as const;

export const REMOTE_USAGE = '[--url URL] [--token-file FILE]   (token also from SHADOWVAULT_TOKEN)';

/**
 * Whether a store command runs against an appliance: `--url` or `--token-file` given, or SHADOWVAULT_URL set
 * and no `--store` given (an explicit local store wins over the environment).
 */
export function isRemote(values: { url?: string; 'token-file'?: string; store?: string }, env: NodeJS.ProcessEnv): boolean {
  if (values.url !== undefined || values['token-file'] !== undefined) return true;
  return Boolean(env.SHADOWVAULT_URL) && values.store === undefined;
}
