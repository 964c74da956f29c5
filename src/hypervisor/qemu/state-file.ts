/**
 * The QEMU driver's small state file, `<stateDir>/qemu-driver.json`. It survives a killed driver so that the
 * next start can repair what that run left:
 *   vms     VM id → name, QMP socket, disks (so a VM whose QEMU is gone is still listed, as stopped);
 *   paused  VM id → token of the view that ran `stop` (the next start runs `cont` if the VM is still paused);
 *   frozen  VM id → token of the view that froze the guest (the next start thaws it);
 *   views   token → VM id and, per disk, the device and the node the copy-before-write filter was put above
 *           (the next start puts the device back on that node); for a checkpoint view, the overlays (the
 *           next start merges them back: cleanup.ts online, driver.ts offline when the VM's QEMU is gone).
 * Written whole to a temporary file, fsynced and renamed over the old one: a reader sees the old or the new
 * state, never half. One driver process owns a state directory at a time.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';
import type { VmDisk } from '../driver.js';

export interface KnownVm {
  readonly name: string;
  readonly socket: string;
  readonly disks: readonly VmDisk[];
}

export interface ViewRecord {
  readonly vmId: string;
  readonly disks: ReadonlyArray<{ readonly qdev: string; readonly node: string }>;
  /** Stopped VM: the qemu-nbd processes serving its disk files, and their sockets. */
  readonly servers?: ReadonlyArray<{ readonly pid: number; readonly socket: string }>;
  /** Checkpoint view (checkpoint.ts): per disk, the overlay to merge back (written before the overlay exists). */
  readonly overlays?: ReadonlyArray<OverlayRecord>;
}

export interface OverlayRecord {
  readonly qdev: string;
  readonly baseNode: string;
  readonly overlayNode: string;
  readonly jobId: string;
  readonly path: string;
}

export interface DriverState {
  vms: Record<string, KnownVm>;
  paused: Record<string, string>;
  frozen: Record<string, string>;
  views: Record<string, ViewRecord>;
}

const empty = (): DriverState => ({ vms: {}, paused: {}, frozen: {}, views: {} });

export class StateFile {
  readonly path: string;
  #state: DriverState;

  constructor(stateDir: string) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.path = join(stateDir, 'qemu-driver.json');
    this.#state = this.#load();
  }

  get state(): Readonly<DriverState> {
    return this.#state;
  }

  /** Change the state and write it durably before returning. */
  update(change: (s: DriverState) => void): void {
    change(this.#state);
    const tmp = `${this.path}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, JSON.stringify(this.#state, null, 1));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
    } catch (err) {
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `cannot write the QEMU driver state ${this.path}: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
  }

  #load(): DriverState {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty();
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `cannot read the QEMU driver state ${this.path}: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
    try {
      const parsed = JSON.parse(text) as Partial<DriverState>;
      return { ...empty(), ...parsed };
    } catch (err) {
      throw new SvError('SV_ERR_HYPERVISOR_STATE', `the QEMU driver state ${this.path} is not JSON: ${(err as Error).message}`, { path: this.path }, { cause: err });
    }
  }
}
