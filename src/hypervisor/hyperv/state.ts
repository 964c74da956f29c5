/**
 * The Hyper-V driver's state file, `<stateDir>/hyperv-driver.json`: VMs this driver put in the saved state for
 * an offline point (VM id → view token). A driver killed between save and resume leaves the VM saved; the next
 * start's cleanupLeftovers() resumes exactly those. Written whole (temp file, fsync, rename).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';

export interface HyperVState {
  saved: Record<string, string>;
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
      return { saved: {} };
    }
    try {
      const s = JSON.parse(text) as Partial<HyperVState>;
      return { saved: s.saved ?? {} };
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
