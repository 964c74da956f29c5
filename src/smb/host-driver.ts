/**
 * A host's hypervisor driver with its VMs' SMB shares taken into account: wraps any HypervisorDriver (QEMU;
 * the Hyper-V driver the same way) and adds the share permission check of src/smb/rights.ts.
 *
 * - checkOnline: a VM with a disk on a share gains one `share-permissions` requirement per missing right
 *   (share, folder and right named), so `vms --json` shows it under online.unmet before any backup. The
 *   answer is cached (rights.ts); a server that cannot be asked gives one requirement with its reason.
 * - createView: the check runs fresh first; a missing right refuses the point with
 *   SV_ERR_SMB_RIGHTS_MISSING (details.unmet), before anything is frozen or created.
 * Everything else is the wrapped driver's.
 */
import { SvError } from '../errors/index.js';
import type { CleanupReport, HypervisorDriver, ImportRequest, ImportResult, OnlineCheck, PointInTimeView, UnmetRequirement, ViewRequest, VmInfo } from '../hypervisor/driver.js';
import type { MissingRight, RightsChecker } from './rights.js';
import { shareOf, type SmbShare } from './shares.js';

export class SmbHostDriver implements HypervisorDriver {
  readonly #inner: HypervisorDriver;
  readonly #shares: readonly SmbShare[];
  readonly #rights: RightsChecker;
  #known = new Map<string, VmInfo>();

  constructor(inner: HypervisorDriver, shares: readonly SmbShare[], rights: RightsChecker) {
    this.#inner = inner;
    this.#shares = shares;
    this.#rights = rights;
  }

  get hypervisor(): HypervisorDriver['hypervisor'] {
    return this.#inner.hypervisor;
  }

  async listVms(): Promise<VmInfo[]> {
    const vms = await this.#inner.listVms();
    this.#known = new Map(vms.map((v) => [v.id, v]));
    return vms;
  }

  async checkOnline(vmId: string, opts?: { allowOnline?: boolean }): Promise<OnlineCheck> {
    const inner = await this.#inner.checkOnline(vmId, opts);
    let extra: UnmetRequirement[];
    try {
      extra = (await this.missing(vmId, false)).map(requirementOf);
    } catch (err) {
      extra = [{ requirement: 'share-permissions', reason: `the share permissions cannot be checked: ${(err as Error).message}` }];
    }
    if (!extra.length) return inner;
    return { possible: false, unmet: [...inner.unmet, ...extra] };
  }

  async createView(vmId: string, req: ViewRequest): Promise<PointInTimeView> {
    if (!this.#known.has(vmId)) await this.listVms();
    const missing = await this.missing(vmId, true);
    if (missing.length) {
      throw new SvError('SV_ERR_SMB_RIGHTS_MISSING', `VM ${vmId}: backup refused, ${missing.map((m) => m.reason).join('; ')}`, { vmId, unmet: missing.map(({ share, folder, right, scope, account, status }) => ({ share, folder, right, scope, account, status })) });
    }
    return this.#inner.createView(vmId, req);
  }

  importVm(req: ImportRequest): Promise<ImportResult> {
    return this.#inner.importVm(req);
  }

  cleanupLeftovers(): Promise<CleanupReport> {
    return this.#inner.cleanupLeftovers();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  /** The rights the machine account lacks for the VM's disks on shares (each share and folder once). */
  async missing(vmId: string, fresh: boolean): Promise<MissingRight[]> {
    const vm = this.#known.get(vmId);
    if (!vm) return [];
    const seen = new Set<string>();
    const out: MissingRight[] = [];
    for (const d of vm.disks) {
      const on = shareOf(this.#shares, d.path);
      if (!on || seen.has(`${on.share.unc}|${on.folder}`)) continue;
      seen.add(`${on.share.unc}|${on.folder}`);
      out.push(...await this.#rights.check(on.share, on.folder, fresh));
    }
    return out;
  }
}

function requirementOf(m: MissingRight): UnmetRequirement {
  return { requirement: 'share-permissions', reason: `missing ${m.right} right: ${m.reason}`, share: m.share, folder: m.folder, right: m.right };
}
