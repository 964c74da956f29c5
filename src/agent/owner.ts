/**
 * VM ownership records: which appliance protects a VM, kept on the host side, next to the VM's disks.
 *
 * WHERE. `<folder of the VM's first disk>/.shadowvault-owner.<vm id>.json`. On a cluster the disks are on the
 * shared storage, which every node sees at the same path, so every node's agent reads the same record, before
 * and after a live migration: ownership moves with the VM without anything being sent anywhere. (QEMU keeps no
 * metadata of its own that survives a restart and migrates with the VM: a dirty bitmap would, but only while
 * QEMU runs, and a mirror drops it.) A storage migration that copies the disks without the record loses it; the
 * owner's next backup writes it again (claim on first backup, below). A VM without a disk in a folder (none, or
 * a block device) has no record and belongs to nobody.
 *
 * FORMAT (version 1): `{version, vmId, appliance: {id, name}, since, host, takenOverFrom?: {id, name, at}}`:
 * the appliance that owns the VM (its id from the appliance's state, its name for people), when and through
 * which host it claimed it, and, after an admin takeover, whom it was taken from.
 *
 * OPERATIONS (the only writers; each is durable before it returns: temp file, fsync, then link/rename, then
 * the folder fsynced):
 * - claim: no record → create it with link(2), which fails if the file exists, so of two appliances
 *   claiming at once through two nodes exactly one wins and the other reads the winner's record; a record of
 *   the same appliance → unchanged (idempotent); another appliance's record → SV_ERR_AGENT_VM_OWNED naming
 *   it, unless `takeOver`, which replaces it (rename) and keeps the previous owner in `takenOverFrom`.
 * - release: only the owner's own record is removed. It is renamed aside first and checked there, so a takeover
 *   that lands between the check and the removal is put back, not deleted.
 * A malformed record is SV_ERR_AGENT_OWNER_RECORD and is never overwritten by a claim (only by a takeover).
 * A kill -9 mid-write leaves at most a `<record>.tmp-*` file beside it (never a partial record); the next claim
 * removes those older than a minute (a concurrent claim's temp, on this node or another, is younger).
 */
import { createHash, randomBytes } from 'node:crypto';
import { link, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { SvError } from '../errors/index.js';
import type { VmInfo } from '../hypervisor/driver.js';
import { fsyncDir, TMP_MARK } from '../util/durable.js';

export interface ApplianceRef {
  readonly id: string;
  readonly name: string;
}

export interface OwnerRecord {
  readonly version: 1;
  readonly vmId: string;
  readonly appliance: ApplianceRef;
  /** When the appliance claimed (or took over) the VM. */
  readonly since: string;
  /** The host whose agent wrote the record. */
  readonly host: string;
  /** Set by a takeover: the appliance the VM was taken from, and when. */
  readonly takenOverFrom?: ApplianceRef & { readonly at: string };
}

const MAX_RECORD = 16 * 1024;

/** The record's file for `vm`, or undefined when the VM has no disk in a folder. */
export function ownerPath(vm: Pick<VmInfo, 'id' | 'disks'>): string | undefined {
  const first = vm.disks[0]?.path;
  if (!first || !isAbsolute(first) || first.startsWith('/dev/')) return undefined;
  const safe = /^[A-Za-z0-9._-]{1,128}$/.test(vm.id) && !vm.id.startsWith('.') ? vm.id : createHash('sha256').update(vm.id).digest('hex').slice(0, 32);
  return join(dirname(first), `.shadowvault-owner.${safe}.json`);
}

function bad(path: string, why: string, cause?: unknown): SvError {
  return new SvError('SV_ERR_AGENT_OWNER_RECORD', `VM ownership record ${path}: ${why}`, { path }, cause === undefined ? undefined : { cause });
}

function isRef(v: unknown): v is ApplianceRef {
  const r = v as Record<string, unknown>;
  return typeof v === 'object' && v !== null && typeof r.id === 'string' && r.id.length > 0 && r.id.length <= 128 && typeof r.name === 'string' && r.name.length <= 255;
}

/** Check a record's shape (hostile or damaged file): the record, or SV_ERR_AGENT_OWNER_RECORD. */
export function parseOwnerRecord(text: string, path: string, vmId: string): OwnerRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw bad(path, 'not JSON', err);
  }
  return ownerRecordOf(v, path, vmId);
}

/** Check a parsed record (from a file, or as an agent reports it in its inventory); `where` names it in errors. */
export function ownerRecordOf(value: unknown, where: string, vmId: string): OwnerRecord {
  const path = where;
  const v = value as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'not an object');
  if (v.version !== 1) throw bad(path, `version ${JSON.stringify(v.version)}, expected 1`);
  if (v.vmId !== vmId) throw bad(path, `it names VM ${JSON.stringify(v.vmId)}, not ${vmId}`);
  if (!isRef(v.appliance)) throw bad(path, 'appliance must be {id, name}');
  if (typeof v.since !== 'string' || typeof v.host !== 'string' || v.host.length > 255) throw bad(path, 'since and host must be strings');
  const from = v.takenOverFrom as Record<string, unknown> | undefined;
  if (from !== undefined && (!isRef(from) || typeof from.at !== 'string')) throw bad(path, 'takenOverFrom must be {id, name, at}');
  return {
    version: 1, vmId, appliance: { id: v.appliance.id, name: v.appliance.name }, since: v.since, host: v.host,
    ...(from ? { takenOverFrom: { id: from.id as string, name: from.name as string, at: from.at as string } } : {}),
  };
}

/** The VM's record; undefined when there is none (or the VM cannot have one). */
export async function readOwner(vm: Pick<VmInfo, 'id' | 'disks'>): Promise<OwnerRecord | undefined> {
  const path = ownerPath(vm);
  return path ? readAt(path, vm.id) : undefined;
}

async function readAt(path: string, vmId: string): Promise<OwnerRecord | undefined> {
  let text: string;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size > MAX_RECORD) throw bad(path, `not a regular file of at most ${MAX_RECORD} bytes`);
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof SvError) throw err;
    throw bad(path, (err as Error).message, err);
  }
  return parseOwnerRecord(text, path, vmId);
}

const STALE_TEMP_MS = 60_000;

/** Remove `path`'s temp files left by a killed writer (older than STALE_TEMP_MS). */
async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `${basename(path)}${TMP_MARK}`;
  const names = (await readdir(dirname(path)).catch(() => [] as string[])).filter((n) => n.startsWith(prefix));
  for (const n of names) {
    const p = join(dirname(path), n);
    const st = await stat(p).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > STALE_TEMP_MS) await unlink(p).catch(() => undefined);
  }
}

/** A temp file beside `path` holding `record`, synced. */
async function writeTemp(path: string, record: OwnerRecord): Promise<string> {
  const tmp = join(dirname(path), `${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(`${JSON.stringify(record)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return tmp;
}

export interface ClaimResult {
  readonly record: OwnerRecord;
  /** The owner before a takeover (absent: the VM was free, or already ours). */
  readonly previous?: OwnerRecord;
}

export function ownedError(vmId: string, owner: Pick<OwnerRecord, 'appliance' | 'since'>, me: ApplianceRef): SvError {
  return new SvError('SV_ERR_AGENT_VM_OWNED',
    `VM ${vmId} is protected by appliance "${owner.appliance.name}" (${owner.appliance.id}) since ${owner.since}, not by "${me.name}": it has to release it (remove its data source), or an admin takes it over (sources add --vm ${vmId} --take-over)`,
    { vmId, owner: owner.appliance.id, ownerName: owner.appliance.name, since: owner.since });
}

/** Claim `vm` for `me` (see the header). */
export async function claimOwner(vm: Pick<VmInfo, 'id' | 'disks'>, me: ApplianceRef, host: string, opts: { takeOver?: boolean; now?: () => Date } = {}): Promise<ClaimResult> {
  const path = ownerPath(vm);
  if (!path) throw bad(`(VM ${vm.id})`, 'the VM has no disk in a folder to keep the record beside');
  const now = (opts.now ?? (() => new Date()))().toISOString();
  await removeStaleTemps(path);
  for (let attempt = 0; attempt < 8; attempt++) {
    let current: OwnerRecord | undefined;
    try {
      current = await readAt(path, vm.id);
    } catch (err) {
      if (!opts.takeOver) throw err; // a damaged record is replaced by a takeover only
      current = undefined;
    }
    if (current && current.appliance.id === me.id) return { record: current };
    if (current && !opts.takeOver) throw ownedError(vm.id, current, me);
    const record: OwnerRecord = {
      version: 1, vmId: vm.id, appliance: { id: me.id, name: me.name }, since: now, host,
      ...(current ? { takenOverFrom: { id: current.appliance.id, name: current.appliance.name, at: now } } : {}),
    };
    let tmp: string | undefined;
    let renamed = false;
    try {
      tmp = await writeTemp(path, record);
      if (opts.takeOver) {
        await rename(tmp, path);
        renamed = true;
      } else {
        try {
          await link(tmp, path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // another claim won: read it again
          throw err;
        }
      }
      await fsyncDir(dirname(path));
      return current ? { record, previous: current } : { record };
    } catch (err) {
      if (err instanceof SvError) throw err;
      throw bad(path, `cannot write: ${(err as Error).message}`, err);
    } finally {
      if (tmp && !renamed) await unlink(tmp).catch(() => undefined);
    }
  }
  throw bad(path, 'the record kept changing under the claim');
}

/** Remove `vm`'s record if `me` owns it. True: removed; false: there was none or it is another's (kept). */
export async function releaseOwner(vm: Pick<VmInfo, 'id' | 'disks'>, me: ApplianceRef): Promise<boolean> {
  const path = ownerPath(vm);
  if (!path) return false;
  const current = await readAt(path, vm.id).catch(() => undefined);
  if (current?.appliance.id !== me.id) return false;
  const aside = `${path}${TMP_MARK}release-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw bad(path, `cannot remove: ${(err as Error).message}`, err);
  }
  const moved = await readAt(aside, vm.id).catch(() => undefined);
  if (moved && moved.appliance.id !== me.id) {
    // a takeover landed between the check and the rename: put it back (unless a newer record is there)
    await link(aside, path).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
    await fsyncDir(dirname(path));
    return false;
  }
  await unlink(aside).catch(() => undefined);
  await fsyncDir(dirname(path));
  return true;
}
