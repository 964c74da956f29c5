/**
 * The Hyper-V driver's mapping of host records to the driver interface (src/hypervisor/hyperv/inventory.ts), on
 * the records parsed from test/fixtures/hyperv/vm-inventory.json (written from the documented CIM classes):
 * disk keys and identities, RCT fallbacks (configuration version < 6.2, VHD disk) with their reasons, and each
 * online requirement (integration service, guest problems, state, cluster group, pass-through disk, option).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ONLINE_REQUIREMENTS } from '../../src/hypervisor/driver.js';
import type { HvReferencePoint, HvVm } from '../../src/hypervisor/hyperv/host.js';
import { newestReference } from '../../src/hypervisor/hyperv/driver.js';
import type { HyperVState } from '../../src/hypervisor/hyperv/state.js';
import { fallbackReason, onlineCheck, ownedElsewhere, vmInfo } from '../../src/hypervisor/hyperv/inventory.js';
import { parseEnvelope, parseVms } from '../../src/hypervisor/hyperv/records.js';
import { REPO_ROOT } from '../helpers/env.js';

const [sql, legacy] = parseVms('vm-inventory.ps1', parseEnvelope('vm-inventory.ps1', readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'hyperv', 'vm-inventory.json'), 'utf8'))) as [HvVm, HvVm];

t.test('VmInfo: keys, identities, tracking state per disk', async (t) => {
  const info = vmInfo(sql, new Set([sql.disks[0]!.diskIdentifier]), 'node-x');
  t.match(info, { id: sql.id, state: 'running', guestAgent: { present: true, answering: true } });
  t.match(info.disks, [
    { key: 'scsi0-0', format: 'vhdx', identity: '4F1A9C27-6E3B-4D80-9C5A-1B2E3F405162', tracking: { state: 'recording', persistent: true } },
    { key: 'scsi0-1', tracking: { state: 'none' } },
  ]);
  const old = vmInfo(legacy, new Set(), 'node-x');
  t.match(old, { state: 'paused', guestAgent: { present: false, answering: false } });
  t.match(old.disks, [{ key: 'ide0-0', format: 'vhd', tracking: { state: 'unsupported', reason: /configuration version 5\.0 is older than 6\.2/u } }]);
});

t.test('RCT fallbacks: configuration version, then disk format', async (t) => {
  t.equal(fallbackReason(sql, sql.disks[0]!), undefined);
  t.match(fallbackReason({ ...sql, configurationVersion: '6.1' }, sql.disks[0]!), /6\.1 is older than 6\.2/u);
  t.equal(fallbackReason({ ...sql, configurationVersion: '10.0' }, sql.disks[0]!), undefined, '10.0 is newer than 6.2 (not a string comparison)');
  t.match(fallbackReason(sql, { ...sql.disks[0]!, format: 'VHD' }), /VHD disk .* needs VHDX/u);
});

t.test('online requirements, each unmet one with its reason', async (t) => {
  t.same(onlineCheck(sql, true), { possible: true, unmet: [] });
  const cases: Array<[string, HvVm, string[]]> = [
    ['integration service disabled', { ...sql, backup: { enabled: false, responding: false, guestProblems: [] } }, ['guest-agent']],
    ['not responding', { ...sql, backup: { enabled: true, responding: false, guestProblems: [] } }, ['guest-agent']],
    ['dynamic disk and FAT volume in the guest', { ...sql, backup: { enabled: true, responding: true, guestProblems: ['dynamic disk 2', 'volume F: is FAT32'] } }, ['guest-freeze', 'guest-freeze']],
    ['saved VM', { ...sql, state: 'Saved' }, ['vm-running']],
    ['cluster group offline', { ...sql, cluster: { ownerNode: 'HV-NODE1', groupState: 'Offline' } }, ['vm-running']],
    ['pass-through disk', { ...sql, disks: [...sql.disks, { ...sql.disks[0]!, format: 'PassThrough', controllerLocation: 5 }] }, ['disks-snapshottable']],
  ];
  for (const [name, vm, expected] of cases) {
    const c = onlineCheck(vm, true);
    t.equal(c.possible, false, name);
    t.same(c.unmet.map((u) => u.requirement), expected, `${name}: ${c.unmet.map((u) => u.reason).join('; ')}`);
    for (const u of c.unmet) t.ok(u.requirement in ONLINE_REQUIREMENTS && u.reason.length > 0);
  }
  t.same(onlineCheck(sql, false).unmet.map((u) => u.requirement), ['online-allowed']);
  t.same(onlineCheck(legacy, true).unmet.map((u) => u.requirement), ['guest-agent', 'vm-running', 'disks-snapshottable'], 'legacy: its disk is on IDE too');
  const ide = onlineCheck({ ...sql, disks: [{ ...sql.disks[0]!, controllerType: 'IDE' }] }, true);
  t.match(ide.unmet, [{ requirement: 'disks-snapshottable', reason: /ide0-0 is on an IDE controller: .*SCSI/u }], 'DPM: online backup needs SCSI');
});

t.test('clusters: only the owner node of the group reports the VM as its own', async (t) => {
  const clustered: HvVm = { ...sql, cluster: { ownerNode: 'HV-NODE1', groupState: 'Online' }, storage: 'CSV' };
  for (const node of ['HV-NODE1', 'hv-node1', 'hv-node1.corp.example']) {
    t.equal(ownedElsewhere(clustered, node), undefined, `${node} is the owner`);
    t.equal(vmInfo(clustered, new Set(), node).migration, undefined);
  }
  t.equal(ownedElsewhere(clustered, 'HV-NODE2'), 'HV-NODE1');
  t.equal(vmInfo(clustered, new Set(), 'HV-NODE2').migration, 'completed', 'another node: ranked LEFT by placement');
  t.equal(ownedElsewhere({ ...sql, cluster: null }, 'HV-NODE2'), undefined, 'a VM that is not clustered belongs to the host that lists it');
});

t.test('leftover reference points: which one to keep (Msvm_VirtualSystemReferencePoint has no creation time)', async (t) => {
  const rp = (name: string, created = ''): HvReferencePoint => ({ id: `Microsoft:${name}`, vmId: 'vm', name, created, rctIds: [] });
  const state = (s: Partial<HyperVState>): HyperVState => ({ saved: {}, references: {}, latest: {}, converting: {}, tracked: {}, ...s });
  const refs = [rp('sv-old'), rp('sv-new')];
  t.equal(newestReference(refs, state({ latest: { vm: 'sv-old' }, converting: { vm: 'sv-new' } }), 'vm'), 'sv-new', 'killed after the conversion: the converted one');
  t.equal(newestReference(refs, state({ latest: { vm: 'sv-old' }, converting: { vm: 'sv-gone' } }), 'vm'), 'sv-old', 'killed before it: the last converted one');
  t.equal(newestReference(refs, state({}), 'vm'), undefined, 'state lost and no creation times: keep all');
  t.equal(newestReference([rp('sv-a')], state({}), 'vm'), 'sv-a');
  t.equal(newestReference([rp('sv-a', '2026-01-02T00:00:00Z'), rp('sv-b', '2026-01-01T00:00:00Z')], state({}), 'vm'), 'sv-a', 'by creation time when every one has it');
});
