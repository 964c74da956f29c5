/**
 * The guest's file systems frozen around a piece of work, with a bound: guest-ping, guest-fsfreeze-freeze,
 * the work, guest-fsfreeze-thaw in `finally`, confirmed with guest-fsfreeze-status (thaw retried up to three
 * times). If the work outlasts `timeoutMs` from the start of the freeze, the thaw is forced at that moment
 * and the work's result is refused with SV_ERR_HYPERVISOR_FREEZE_FAILED (it is no longer one frozen instant).
 * `onFrozen`/`onThawed` mark the state file so that a killed driver's successor thaws the guest.
 */
import { SvError } from '../../errors/index.js';
import { GuestAgentClient } from '../../qemu/guest-agent.js';
import { thawConfirmed } from './thaw.js';

export interface FreezeHooks {
  onFreezing(): void;
  onThawed(): void;
}

export async function withFrozenGuest<T>(socket: string, timeoutMs: number, hooks: FreezeHooks, work: () => Promise<T>): Promise<{ result: T; freezeMs: number }> {
  const ga = await GuestAgentClient.connect(socket, { commandTimeoutMs: 10_000 });
  try {
    await ga.ping({ timeoutMs: 2000 });
    hooks.onFreezing();
    const start = performance.now();
    let forced = false;
    let thawing: Promise<void> | undefined;
    const thaw = (): Promise<void> => (thawing ??= thawConfirmed(ga));
    const timer = setTimeout(() => {
      forced = true;
      thaw().catch(() => undefined);
    }, timeoutMs);
    try {
      try {
        await ga.fsfreezeFreeze({ timeoutMs });
      } catch (err) {
        throw new SvError('SV_ERR_HYPERVISOR_FREEZE_FAILED', `guest-fsfreeze-freeze failed: ${(err as Error).message}`, {}, { cause: err });
      }
      const result = await work();
      if (forced) throw new SvError('SV_ERR_HYPERVISOR_FREEZE_FAILED', `the guest stayed frozen longer than ${timeoutMs} ms: thawed by force before the point in time was taken`, { timeoutMs });
      await thaw();
      return { result, freezeMs: Math.round(performance.now() - start) };
    } finally {
      clearTimeout(timer);
      await thaw();
      hooks.onThawed();
    }
  } finally {
    ga.close();
  }
}
