/** Thaw a guest and confirm it with guest-fsfreeze-status (thaw retried up to three times). */
import { SvError } from '../../errors/index.js';
import { GuestAgentClient } from '../../qemu/guest-agent.js';

export async function thawConfirmed(ga: GuestAgentClient): Promise<void> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      if ((await ga.fsfreezeStatus()) === 'thawed') return;
      await ga.fsfreezeThaw({ timeoutMs: 10_000 });
    } catch (err) {
      last = err;
    }
  }
  try {
    if ((await ga.fsfreezeStatus()) === 'thawed') return;
  } catch (err) {
    last = err;
  }
  throw new SvError('SV_ERR_HYPERVISOR_THAW_FAILED', `the guest agent did not confirm the thaw: ${(last as Error | undefined)?.message ?? 'guest-fsfreeze-status is still "frozen"'}`, {}, { cause: last });
}

/** Thaw the guest behind a guest-agent socket (a guest left frozen by a killed run). */
export async function withThawedGuest(socket: string): Promise<void> {
  const ga = await GuestAgentClient.connect(socket, { commandTimeoutMs: 10_000 });
  try {
    await thawConfirmed(ga);
  } finally {
    ga.close();
  }
}
