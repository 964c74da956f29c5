/**
 * The Hyper-V driver's state file, `<stateDir>/hyperv-driver.json`. Written whole (temp file, fsync, rename).
 *   saved       VM id → view token: VMs this driver put in the saved state for an offline point. A driver killed
 *               between save and resume leaves the VM saved; the next cleanupLeftovers() resumes exactly those.
 *   references  reference name (`sv-<token>`, the ChangeReference id the appliance keeps) → the
 *               Msvm_VirtualSystemReferencePoint InstanceID it was converted to (written by commit). Lost state
 *               only costs the ElementName lookup of the reference point, then digest comparison.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';

export interface HyperVState {
  saved: Record<string, string>;
  references: Record<string, string>;
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
      return { saved: {}, references: {} };
    }
    try {
      const s = JSON.parse(text) as Partial<HyperVState>;
      return { saved: s.saved ?? {}, references: s.references ?? {} };
    } catch (err) {
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `${this.path} is not JSON: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
  }

  update(change: (s: HyperVState) => void): void {
    const s = this.read();
    change(s);
    const tmp = `${this.path}.tmp-${process.pid}`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, JSON.stringify(s));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
    } catch (err) {
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `cannot write ${this.path}: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
  }
}
