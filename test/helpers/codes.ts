/** The outcome of a call, as tests compare it: 'ok', or the thrown error's code (its message when it has none). */
export function errorCode(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return String((err as { code?: string }).code ?? (err as Error).message);
  }
}

/** errorCode for an async call: 'ok' when it resolves, else the rejection's code (its message when it has none). */
export async function asyncErrorCode(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    return String((err as { code?: string }).code ?? (err as Error).message);
  }
}
