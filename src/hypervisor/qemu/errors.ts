/** Turning QMP failures into the driver's coded errors. */
import { SvError, hasCode } from '../../errors/index.js';

/** The QMP connection ended (QEMU quit or crashed) → SV_ERR_HYPERVISOR_VM_GONE; anything else as it is. */
export function asVmGone(err: unknown, vmId: string, during: string): unknown {
  if (hasCode(err, 'SV_ERR_QEMU_GONE') || (hasCode(err, 'SV_ERR_QEMU_CONNECT') && /ENOENT|ECONNREFUSED/u.test((err as Error).message))) {
    return new SvError('SV_ERR_HYPERVISOR_VM_GONE', `VM ${vmId}: QEMU went away during ${during}: ${(err as Error).message}`, { vmId, during }, { cause: err });
  }
  return err;
}

export function wireOf(err: unknown): { code: string; message: string } {
  return err instanceof SvError ? { code: err.code, message: err.message } : { code: 'SV_ERR_CORE_INTERNAL', message: String((err as Error)?.message ?? err) };
}
