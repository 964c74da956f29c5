/**
 * Protection configuration: data sources and protection groups, with the rules a JSON schema cannot say
 * (unique names, members that exist, a source in use cannot be deleted). Every change is durable before
 * the call resolves.
 *
 * A source's name is also the name of its series in the store, which outlives the source: adding a source
 * under a name whose series holds points needs `attach` (continue that series: later backups are incremental
 * against its newest point, and a disk whose size differs gets a new initial copy); without it the add is
 * refused with SV_ERR_API_SOURCE_HAS_POINTS.
 */
import { randomUUID } from 'node:crypto';
import { isAbsolute, normalize } from 'node:path';
import type { Logger } from 'pino';
import { SvError } from '../errors/index.js';
import { ownedError, type ApplianceRef } from '../agent/owner.js';
import type { DataSource, ProtectionGroup, RetentionPolicy, SourceDisk } from './model.js';
import { checkSourceDisks } from './paths.js';
import type { OwnerOps } from './ownership.js';
import type { StateDb } from './state.js';

export interface SourceInput {
  name?: string;
  host?: string;
  disks?: SourceDisk[];
  /** Add only: continue the store's series of this name (its recovery points) instead of refusing. */
  attach?: boolean;
  /** Add only: a VM source, the VM by name or id (instead of `disks`); `name` defaults to the VM's name. */
  vm?: string;
  /** VM sources: online backups allowed (default true). */
  online?: boolean;
  /** Add only, VM sources: an admin's forced takeover of a VM another appliance protects (logged, and shown in `vms`). */
  takeOver?: boolean;
}

/** A VM of the agents' inventory, as source creation looks it up. */
export interface VmMatch {
  readonly id: string;
  readonly name: string;
  readonly host: string;
  /** The agent that reports it. */
  readonly hostId: string;
  /** Its owner, from its host's ownership record (null: none; `here`: this appliance). */
  readonly protectedBy?: { readonly id: string; readonly name: string; readonly here: boolean; readonly since: string } | null;
}

export interface GroupInput {
  name?: string;
  members?: string[];
  syncFrequencyMinutes?: number;
  recoveryPointTimes?: string[];
  retention?: RetentionPolicy;
  consistencyCheckTimes?: string[];
  disks?: string[];
  enabled?: boolean;
}

function checkDisks(disks: { name: string; path: string }[]): void {
  const names = new Set<string>();
  for (const d of disks) {
    if (names.has(d.name)) throw new SvError('SV_ERR_API_VALIDATION', `disk name "${d.name}" appears twice`, { disk: d.name });
    names.add(d.name);
    if (!isAbsolute(d.path) || normalize(d.path) !== d.path) {
      throw new SvError('SV_ERR_API_VALIDATION', `disk "${d.name}": path "${d.path}" must be absolute and normalised (no "..", no "//")`, { disk: d.name, path: d.path });
    }
  }
}

export class Protection {
  #db: StateDb;
  #now: () => number;
  /** Is a job queued or running for this source? */
  #busy: (sourceId: string) => boolean;
  /** Where source disks may be (paths.ts checkSourceDisks; the engine checks again when it opens them). */
  readonly #sourceRoots: readonly string[];
  /** Recovery points the store holds under a source name. */
  #pointsNamed: (name: string) => Promise<number>;

  /** VMs of the inventory (every agent's last report). */
  #vms: () => readonly VmMatch[];
  #clusterOf: (agentId: string) => string | null;
  /** VM ownership (src/appliance/ownership.ts): claimed at add, released at remove. */
  #owners: { readonly ops: OwnerOps; readonly self: () => ApplianceRef; readonly log: Logger } | undefined;

  constructor(
    db: StateDb, now: () => number, busy: (sourceId: string) => boolean, sourceRoots: readonly string[], pointsNamed: (name: string) => Promise<number> = async () => 0,
    vms: () => readonly VmMatch[] = () => [],
    clusterOf: (agentId: string) => string | null = () => null,
    owners?: { readonly ops: OwnerOps; readonly self: () => ApplianceRef; readonly log: Logger },
  ) {
    this.#owners = owners;
    this.#vms = vms;
    this.#clusterOf = clusterOf;
    this.#db = db;
    this.#now = now;
    this.#busy = busy;
    this.#sourceRoots = sourceRoots;
    this.#pointsNamed = pointsNamed;
  }

  sources(): DataSource[] {
    return this.#db.sources.value;
  }

  source(id: string): DataSource {
    const s = this.#db.sources.value.find((x) => x.id === id);
    if (!s) throw new SvError('SV_ERR_API_NOT_FOUND', `no data source ${id}`, { id });
    return s;
  }

  /** The VM `nameOrId` names in the inventory: exactly one (an id, or a name no other VM has). */
  #vmOf(nameOrId: string): VmMatch {
    const all = this.#vms();
    const byId = all.filter((v) => v.id === nameOrId);
    const found = byId.length ? byId : all.filter((v) => v.name === nameOrId);
    if (found.length === 0) throw new SvError('SV_ERR_API_NOT_FOUND', `no VM "${nameOrId}" in the inventory of the connected agents (see \`shadowvault vms\`)`, { vm: nameOrId });
    if (found.length > 1) throw new SvError('SV_ERR_API_CONFLICT', `${found.length} VMs are named "${nameOrId}" (on ${found.map((v) => v.host).join(', ')}): give the VM's id`, { vm: nameOrId, ids: found.map((v) => v.id) });
    return found[0]!;
  }

  async createSource(input: SourceInput): Promise<DataSource> {
    if (input.vm !== undefined) return this.#createVmSource(input, input.vm);
    const name = input.name ?? '';
    if (this.#db.sources.value.some((s) => s.name === name)) throw new SvError('SV_ERR_API_CONFLICT', `a data source named "${name}" exists`, { name });
    checkDisks(input.disks ?? []);
    checkSourceDisks(input.disks ?? [], this.#sourceRoots);
    if (!input.attach) {
      const n = await this.#pointsNamed(name);
      if (n > 0) throw new SvError('SV_ERR_API_SOURCE_HAS_POINTS', `the store already holds ${n} recovery point(s) for "${name}"; add with --attach (API: "attach": true) to continue that series, or choose another name`, { name, points: n });
    }
    const s: DataSource = { id: randomUUID(), name, host: input.host ?? 'local', disks: input.disks ?? [], createdAt: new Date(this.#now()).toISOString() };
    await this.#db.sources.save([...this.#db.sources.value, s]);
    return s;
  }

  async #createVmSource(input: SourceInput, nameOrId: string): Promise<DataSource> {
    if (input.disks?.length) throw new SvError('SV_ERR_API_VALIDATION', 'a data source has either disks (paths) or a VM, not both', {});
    const vm = this.#vmOf(nameOrId);
    const name = input.name ?? vm.name.replace(/[^A-Za-z0-9 ._@()+-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 128);
    if (!name) throw new SvError('SV_ERR_API_VALIDATION', `VM "${vm.name}" has no usable source name: give one with "name"`, { vm: vm.id });
    if (this.#db.sources.value.some((s) => s.name === name)) throw new SvError('SV_ERR_API_CONFLICT', `a data source named "${name}" exists`, { name });
    const same = this.#db.sources.value.find((s) => s.vm?.id === vm.id);
    if (same) throw new SvError('SV_ERR_API_CONFLICT', `VM ${vm.name} (${vm.id}) is already protected as data source "${same.name}"`, { vm: vm.id, sourceId: same.id });
    if (!input.attach) {
      const n = await this.#pointsNamed(name);
      if (n > 0) throw new SvError('SV_ERR_API_SOURCE_HAS_POINTS', `the store already holds ${n} recovery point(s) for "${name}"; add with --attach (API: "attach": true) to continue that series, or choose another name`, { name, points: n });
    }
    let takenOver: { from: ApplianceRef; at: string } | undefined;
    if (this.#owners) {
      const me = this.#owners.self();
      const by = vm.protectedBy;
      // the inventory's view first (no call), then the host's record decides (it may have changed since)
      if (by && !by.here && !input.takeOver) throw ownedError(vm.id, { appliance: { id: by.id, name: by.name }, since: by.since }, me);
      const claimed = await this.#owners.ops.claim(vm, input.takeOver === true);
      if (claimed?.previous) {
        takenOver = { from: { id: claimed.previous.appliance.id, name: claimed.previous.appliance.name }, at: claimed.owner.since };
        this.#owners.log.warn({ vmId: vm.id, vm: vm.name, from: takenOver.from, to: me, host: vm.host }, 'ADMIN TAKEOVER: VM taken over from another appliance');
      }
    }
    const s: DataSource = {
      id: randomUUID(), name, host: vm.host, disks: [],
      vm: { id: vm.id, name: vm.name, online: input.online !== false, agentId: vm.hostId, cluster: this.#clusterOf(vm.hostId), ...(takenOver ? { takenOver } : {}) },
      createdAt: new Date(this.#now()).toISOString(),
    };
    try {
      await this.#db.sources.save([...this.#db.sources.value, s]);
    } catch (err) {
      if (this.#owners) await this.#owners.ops.release(vm.id); // claimed for a source that is not saved
      throw err;
    }
    if (this.#owners) await this.#owners.ops.kept(vm.id);
    return s;
  }

  async updateSource(id: string, input: SourceInput): Promise<DataSource> {
    const cur = this.source(id);
    if (input.name !== undefined && input.name !== cur.name) {
      throw new SvError('SV_ERR_API_CONFLICT', `a data source cannot be renamed (its recovery points are stored under "${cur.name}")`, { id });
    }
    if (input.disks) {
      checkDisks(input.disks);
      checkSourceDisks(input.disks, this.#sourceRoots);
    }
    if (cur.vm && input.disks?.length) throw new SvError('SV_ERR_API_VALIDATION', `data source "${cur.name}" is a VM source: its disks come from the VM`, { id });
    const next: DataSource = { ...cur, host: input.host ?? cur.host, disks: input.disks ?? cur.disks, ...(cur.vm && input.online !== undefined ? { vm: { ...cur.vm, online: input.online } } : {}) };
    await this.#db.sources.save(this.#db.sources.value.map((s) => (s.id === id ? next : s)));
    return next;
  }

  async deleteSource(id: string): Promise<void> {
    const cur = this.source(id);
    const inGroup = this.#db.groups.value.find((g) => g.members.includes(id));
    if (inGroup) throw new SvError('SV_ERR_API_CONFLICT', `data source "${cur.name}" is a member of group "${inGroup.name}"; remove it from the group first`, { id, groupId: inGroup.id });
    if (this.#busy(id)) throw new SvError('SV_ERR_API_CONFLICT', `data source "${cur.name}" has a queued or running job`, { id });
    // removing the source releases the VM (its points stay in the store); the intent is saved first, so that an
    // appliance killed right after the source went still releases it (retried after the host's next push)
    if (cur.vm && this.#owners) await this.#owners.ops.intendRelease(cur.vm.id);
    try {
      await this.#db.sources.save(this.#db.sources.value.filter((s) => s.id !== id));
    } catch (err) {
      if (cur.vm && this.#owners) await this.#owners.ops.kept(cur.vm.id); // the source stays: so does the VM's record
      throw err;
    }
    if (cur.vm && this.#owners) await this.#owners.ops.release(cur.vm.id);
  }

  groups(): ProtectionGroup[] {
    return this.#db.groups.value;
  }

  group(id: string): ProtectionGroup {
    const g = this.#db.groups.value.find((x) => x.id === id);
    if (!g) throw new SvError('SV_ERR_API_NOT_FOUND', `no protection group ${id}`, { id });
    return g;
  }

  #checkMembers(members: string[]): void {
    for (const m of members) {
      if (!this.#db.sources.value.some((s) => s.id === m)) throw new SvError('SV_ERR_API_NOT_FOUND', `member ${m} is not a data source`, { member: m });
    }
  }

  async createGroup(input: GroupInput): Promise<ProtectionGroup> {
    const name = input.name ?? '';
    if (this.#db.groups.value.some((g) => g.name === name)) throw new SvError('SV_ERR_API_CONFLICT', `a protection group named "${name}" exists`, { name });
    this.#checkMembers(input.members ?? []);
    const g: ProtectionGroup = {
      id: randomUUID(),
      name,
      members: input.members ?? [],
      syncFrequencyMinutes: input.syncFrequencyMinutes ?? 60,
      recoveryPointTimes: [...(input.recoveryPointTimes ?? ['20:00'])].sort(),
      retention: input.retention ?? { days: 14, maxCount: 64 },
      consistencyCheckTimes: [...(input.consistencyCheckTimes ?? [])].sort(),
      disks: input.disks ?? [],
      enabled: input.enabled ?? true,
      createdAt: new Date(this.#now()).toISOString(),
    };
    await this.#db.groups.save([...this.#db.groups.value, g]);
    return g;
  }

  async updateGroup(id: string, input: GroupInput): Promise<ProtectionGroup> {
    const cur = this.group(id);
    if (input.name !== undefined && input.name !== cur.name && this.#db.groups.value.some((g) => g.name === input.name)) {
      throw new SvError('SV_ERR_API_CONFLICT', `a protection group named "${input.name}" exists`, { name: input.name });
    }
    if (input.members) this.#checkMembers(input.members);
    const next: ProtectionGroup = {
      ...cur,
      ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
      recoveryPointTimes: [...(input.recoveryPointTimes ?? cur.recoveryPointTimes)].sort(),
      consistencyCheckTimes: [...(input.consistencyCheckTimes ?? cur.consistencyCheckTimes)].sort(),
    };
    await this.#db.groups.save(this.#db.groups.value.map((g) => (g.id === id ? next : g)));
    return next;
  }

  async deleteGroup(id: string): Promise<void> {
    this.group(id);
    await this.#db.groups.save(this.#db.groups.value.filter((g) => g.id !== id));
  }
}
