/**
 * The Hyper-V driver's state file, `<stateDir>/hyperv-driver.json`. Written whole (util/durable.ts atomicWrite).
 *   saved       VM id → view token: VMs this driver put in the saved state for an offline point. A driver killed
 *               between save and resume leaves the VM saved; the next cleanupLeftovers() resumes exactly those.
 *   references  reference name (`sv-<token>`, the ChangeReference id the appliance keeps) → the
 *               Msvm_VirtualSystemReferencePoint InstanceID it was converted to (written by commit). Lost state
 *               only costs the ElementName lookup of the reference point, then digest comparison.
 *   latest      VM id → the reference name (`sv-<token>`) of the last point this driver converted: the one the
 *               appliance's newest point refers to, kept by cleanupLeftovers. Needed because
 *               Msvm_VirtualSystemReferencePoint has no creation time to order reference points by.
 *   converting  VM id → the reference name being converted (written BEFORE ConvertToReferencePoint, which runs
 *               only after the point committed on the appliance): a driver killed during or after the
 *               conversion leaves it, and cleanupLeftovers keeps that reference point when it exists.
 *   tracked     VM id → identities of the disks whose last commit left a reference point (listVms reports
 *               them 'recording' without asking the host for reference points on every inventory poll).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';
import { atomicWrite } from '../../util/durable.js';

export interface HyperVState {
  saved: Record<string, string>;
  references: Record<string, string>;
  latest: Record<string, string>;
  converting: Record<string, string>;
  tracked: Record<string, string[]>;
}

export class HyperVStateFile {
  readonly path: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, 'hyperv-driver.json');
  }

  read(): HyperVState {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return { saved: {}, references: {}, latest: {}, converting: {}, tracked: {} };
    }
    try {
      const s = JSON.parse(text) as Partial<HyperVState>;
      return { saved: s.saved ?? {}, references: s.references ?? {}, latest: s.latest ?? {}, converting: s.converting ?? {}, tracked: s.tracked ?? {} };
    } catch (err) {
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `${this.path} is not JSON: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
  }

  async update(change: (s: HyperVState) => void): Promise<void> {
    const s = this.read();
    change(s);
    try {
      await atomicWrite(this.path, JSON.stringify(s), 0o600);
    } catch (err) {
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `cannot write ${this.path}: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
  }
}
