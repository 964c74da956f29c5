/**
 * One Hyper-V point-in-time view: a recovery checkpoint (`sv-<token>`) of the VM. While it exists the VM writes
 * to new .avhdx children and each disk's previous file is read-only: that file, read with the project's VHDX
 * reader, is the disk's point in time (a `file` DiskSourceRef).
 *
 *   changes(i, prev)  prev.id names a reference point (`sv-<token>`: a view's checkpoint name; the RCT id exists
 *                     only after ConvertToReferencePoint, so the view cannot hand it out): its RCT id for this
 *                     disk is the LimitId of GetVirtualDiskChanges(frozen file), looped while ProcessedByteLength
 *                     comes back short. Refused (digest comparison) when that reference point is gone, for
 *                     another disk, another size, a disk without RCT (fallbackReason), or when the host says the
 *                     RCT id no longer matches.
 *   commit()          ConvertToReferencePoint (the .avhdx merges back; the RCT id lives on as a reference
 *                     point), then DestroyReferencePoint of this driver's older reference points of the VM.
 *   abort()           DestroySnapshot of the checkpoint (merge back); the old reference point stays, so the
 *                     next view still reports every change since the last committed point.
 *   configuration()   ExportSystemDefinition of the checkpoint (export-config.ps1) into a scratch folder of the
 *                     driver, read back as files (config.ts checks names and sizes), the folder removed: the
 *                     configuration as of the point, .vmcx/.vmrs/.vmgs (version >= 6) or .xml (2012 R2); the
 *                     SIMULATION's `.sim-vmcx.json` is labelled `simulated`.
 * A commit or abort whose merge fails leaves the checkpoint; cleanupLeftovers() removes it later.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SvError, hasCode, wrapSystemError } from '../../errors/index.js';
import { CONFIG_LIMITS, checkConfiguration, type ConfigFormat, type VmConfiguration } from '../config.js';
import type { ChangeAnswer, ChangeReference, Consistency, PointInTimeView, ViewDisk } from '../driver.js';
import type { HvCheckpoint, HyperVHost } from './host.js';
import { PREFIX } from './inventory.js';
import type { HyperVStateFile } from './state.js';

export interface HyperVViewDisk extends ViewDisk {
  /** The read-only file the checkpoint froze (what `source` reads). */
  readonly frozenPath: string;
  /** Why this disk has no RCT (digest comparison), when it has none. */
  readonly fallbackReason?: string;
}

export interface HyperVViewInit {
  readonly host: HyperVHost;
  readonly state: HyperVStateFile;
  readonly vmId: string;
  readonly token: string;
  readonly checkpoint: HvCheckpoint;
  readonly consistency: Consistency;
  readonly reasons: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  readonly disks: readonly HyperVViewDisk[];
  /** Msvm_VirtualSystemSettingData.Version of the VM ("9.0"). */
  readonly configurationVersion: string;
  /** Where configuration exports are made (a fresh sub-folder each time, removed after reading). */
  readonly scratchDir: string;
  readonly onReleased: (token: string) => void;
}

/** The format of exported files: .xml (2012 R2), the simulation's JSON, else .vmcx/.vmrs/.vmgs. */
function formatOf(names: readonly string[]): ConfigFormat {
  if (names.some((n) => n.endsWith('.sim-vmcx.json'))) return 'hyperv-sim-json';
  if (names.some((n) => n.toLowerCase().endsWith('.xml'))) return 'hyperv-xml';
  return 'hyperv-vmcx';
}

export class HyperVView implements PointInTimeView {
  readonly vmId: string;
  readonly token: string;
  readonly consistency: Consistency;
  readonly reasons: readonly string[];
  readonly pauseMs?: number;
  readonly freezeMs?: number;
  readonly disks: readonly HyperVViewDisk[];
  readonly checkpoint: HvCheckpoint;
  readonly #host: HyperVHost;
  readonly #state: HyperVStateFile;
  readonly #onReleased: (token: string) => void;
  readonly #init: HyperVViewInit;
  #config: Promise<VmConfiguration> | undefined;
  #ended: 'open' | 'committed' | 'aborted' = 'open';
  #released = false;

  constructor(init: HyperVViewInit) {
    this.vmId = init.vmId;
    this.token = init.token;
    this.consistency = init.consistency;
    this.reasons = init.reasons;
    if (init.pauseMs !== undefined) this.pauseMs = init.pauseMs;
    if (init.freezeMs !== undefined) this.freezeMs = init.freezeMs;
    this.disks = init.disks;
    this.checkpoint = init.checkpoint;
    this.#host = init.host;
    this.#state = init.state;
    this.#onReleased = init.onReleased;
    this.#init = init;
  }

  async changes(index: number, previous: ChangeReference | null): Promise<ChangeAnswer> {
    const d = this.#disk(index);
    if (previous === null) return { usable: false, reason: 'no previous reference' };
    if (previous.diskIdentity !== d.identity) return { usable: false, reason: `disk replaced: the reference is for disk ${previous.diskIdentity}, this disk is ${d.identity}` };
    if (previous.virtualSize !== d.virtualSize) return { usable: false, reason: `disk resized from ${previous.virtualSize} to ${d.virtualSize} bytes` };
    if (d.fallbackReason) return { usable: false, reason: d.fallbackReason };
    // The reference names a reference point this driver converted (state file), or one with that ElementName.
    const known = this.#state.read().references[previous.id];
    const refs = (await this.#host.listReferencePoints(this.vmId)).filter((r) => r.name.startsWith(PREFIX));
    const ref = refs.find((r) => r.id === known) ?? refs.find((r) => r.name === previous.id);
    if (!ref) return { usable: false, reason: `reference point ${previous.id} does not exist on the VM any more (never committed, or removed): digest comparison` };
    const limitId = ref.rctIds.find((x) => x.diskIdentifier === d.identity)?.rctId;
    if (!limitId) return { usable: false, reason: `reference point ${previous.id} has no RCT id for disk ${d.key}: digest comparison` };
    const extents: Array<[number, number]> = [];
    try {
      for (let offset = 0; offset < d.virtualSize;) {
        const length = d.virtualSize - offset;
        const answer = await this.#host.getVirtualDiskChanges(d.frozenPath, limitId, offset, length);
        for (const [o, l] of answer.ranges) {
          const last = extents[extents.length - 1];
          if (last && last[0] + last[1] === o) last[1] += l;
          else extents.push([o, l]);
        }
        if (answer.processedByteLength === 0) {
          throw new SvError('SV_ERR_HYPERV_BAD_OUTPUT', `GetVirtualDiskChanges on ${d.frozenPath} processed 0 bytes at offset ${offset}`, { path: d.frozenPath, offset });
        }
        offset += answer.processedByteLength;
      }
    } catch (err) {
      if (hasCode(err, 'SV_ERR_HYPERV_RCT_INVALID')) return { usable: false, reason: `RCT id ${limitId} (reference point ${previous.id}) no longer matches the disk's change tracking (${(err as Error).message}): digest comparison` };
      throw err;
    }
    return { usable: true, extents };
  }

  async commit(): Promise<void> {
    if (this.#ended !== 'open' || this.#released) return;
    // Recorded first: a kill during or after the conversion still tells cleanupLeftovers which one to keep.
    await this.#state.update((s) => void (s.converting[this.vmId] = this.checkpoint.name));
    const rp = await this.#host.convertToReferencePoint(this.checkpoint.id);
    this.#ended = 'committed';
    await this.#state.update((s) => {
      s.references[this.checkpoint.name] = rp.id;
      s.latest[this.vmId] = this.checkpoint.name;
      delete s.converting[this.vmId];
      s.tracked[this.vmId] = this.disks.filter((d) => d.nextReference).map((d) => d.identity);
    });
    // The previous reference points are no longer needed; one that cannot be destroyed now is a leftover
    // cleanupLeftovers() removes (it keeps the newest), never a reason to fail a point that is safe.
    for (const old of await this.#host.listReferencePoints(this.vmId)) {
      if (old.id === rp.id || !old.name.startsWith(PREFIX)) continue;
      await this.#host.destroyReferencePoint(old.id).then(async () => this.#state.update((s) => void delete s.references[old.name]), () => undefined);
    }
  }

  async abort(): Promise<void> {
    if (this.#ended !== 'open' || this.#released) return;
    await this.#host.removeCheckpoint(this.checkpoint.id);
    this.#ended = 'aborted';
  }

  async release(): Promise<void> {
    if (this.#released) return;
    try {
      await this.abort();
    } finally {
      this.#released = true;
      this.#onReleased(this.token);
    }
  }

  /** The VM's configuration as of this point, exported into `destDir` (files to keep with the point). */
  async exportConfiguration(destDir: string): Promise<string[]> {
    this.#disk(0);
    return this.#host.exportConfiguration(this.vmId, this.checkpoint.id, destDir);
  }

  /** The configuration as of this point (see the top comment), exported once per view. */
  configuration(): Promise<VmConfiguration> {
    this.#disk(0);
    this.#config ??= this.#exportFiles().catch((err: unknown) => {
      this.#config = undefined;
      throw err;
    });
    return this.#config;
  }

  async #exportFiles(): Promise<VmConfiguration> {
    const dir = await mkdtemp(join(this.#init.scratchDir, `export-${this.token}-`)).catch((err: unknown) => { throw wrapSystemError(err, `create a folder for the configuration export in ${this.#init.scratchDir}`); });
    try {
      const paths = await this.exportConfiguration(dir);
      const where = `configuration of VM ${this.vmId} (checkpoint ${this.checkpoint.name})`;
      let total = 0;
      const files = [];
      for (const p of paths) {
        // Sizes first: a file too large is refused before it is read.
        total += (await stat(p)).size;
        if (total > CONFIG_LIMITS.totalBytes) throw new SvError('SV_ERR_HYPERVISOR_BAD_CONFIGURATION', `${where}: the exported files hold more than ${CONFIG_LIMITS.totalBytes} bytes`, { where });
        files.push({ name: p.split(/[\\/]/u).pop()!, data: await readFile(p) });
      }
      const format = formatOf(files.map((f) => f.name));
      return checkConfiguration({
        format, version: this.#init.configurationVersion, simulated: format === 'hyperv-sim-json',
        note: format === 'hyperv-sim-json' ? 'Hyper-V SIMULATION: a simulated configuration, not a real Hyper-V .vmcx' : `Hyper-V configuration version ${this.#init.configurationVersion}, exported from recovery checkpoint ${this.checkpoint.name}; import with Import-VM (or restore --to-host --import)`,
        files,
      }, where);
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  #disk(index: number): HyperVViewDisk {
    if (this.#released) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.token} of VM ${this.vmId} was released`, { vmId: this.vmId, token: this.token });
    const d = this.disks[index];
    if (!d) throw new SvError('SV_ERR_HYPERVISOR_VIEW_RELEASED', `view ${this.token}: no disk ${index} (it has ${this.disks.length})`, { vmId: this.vmId, index });
    return d;
  }
}
