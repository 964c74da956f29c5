/**
 * VM ownership records (src/agent/owner.ts) on a real folder, and the agent's kept pairings
 * (src/agent/credential.ts):
 * - claim / idempotent claim / refusal naming the owner / takeover keeping the previous owner / release only by
 *   the owner (a takeover is never released by the appliance it was taken from);
 * - concurrent claims by many appliances: exactly one wins, every other one is refused naming the winner;
 * - a damaged record: refused by a claim (SV_ERR_AGENT_OWNER_RECORD), replaced by a takeover;
 * - fuzz: mutated record files and mutated inventory `owner` fields give a record or their coded error;
 * - several pairings kept in one data dir, the first one in credential.json.
 */
import { readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isSvError } from '../../src/errors/index.js';
import { claimOwner, ownerPath, parseOwnerRecord, readOwner, releaseOwner, type OwnerRecord } from '../../src/agent/owner.js';
import { credentialPath, loadCredentials, saveCredential, type AgentCredential } from '../../src/agent/credential.js';
import { checkInventory } from '../../src/appliance/agents/inventory-check.js';
import { tempDir } from '../helpers/env.js';
import { rounds } from '../helpers/soak.js';
import { rng } from '../formats/vhd-fixture-helpers.js';
import { vm as vmReport } from './helpers.js';

const A = { id: 'aaaa-1', name: 'appliance-a' };
const B = { id: 'bbbb-2', name: 'appliance-b' };
const vmIn = (dir: string, id = '0e4e7a00-0000-4000-8000-000000000001') => ({ id, disks: [{ path: join(dir, 'disk.raw') }] }) as unknown as Parameters<typeof claimOwner>[0];
const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (err: unknown) => (isSvError(err) ? err.code : `not coded: ${String(err)}`));

t.test('claim, refusal, takeover, release', async (t) => {
  const dir = tempDir(t, 'sv-owner-');
  const vm = vmIn(dir);
  t.equal(await readOwner(vm), undefined, 'no record: nobody owns the VM');
  const c1 = await claimOwner(vm, A, 'n1');
  t.match(c1.record, { version: 1, vmId: vm.id, appliance: A, host: 'n1' }, 'A claims it');
  t.same((await claimOwner(vm, A, 'n2')).record, c1.record, 'claiming again changes nothing');
  t.equal(await codeOf(claimOwner(vm, B, 'n2')), 'SV_ERR_AGENT_VM_OWNED', 'B is refused');
  await claimOwner(vm, B, 'n2').catch((err: { details: Record<string, unknown>; message: string }) => {
    t.match(err.details, { owner: A.id, ownerName: A.name }, 'naming the owner');
    t.match(err.message, /appliance-a.*--take-over/u);
  });
  const taken = await claimOwner(vm, B, 'n2', { takeOver: true });
  t.match(taken.record, { appliance: B, takenOverFrom: { id: A.id, name: A.name } }, 'a takeover keeps whom it was taken from');
  t.same(taken.previous?.appliance, A, 'and returns the previous owner');
  t.equal(await releaseOwner(vm, A), false, 'A cannot release what B owns');
  t.match(await readOwner(vm), { appliance: B }, 'B still owns it');
  t.equal(await releaseOwner(vm, B), true, 'B releases it');
  t.equal(await readOwner(vm), undefined, 'the record is gone');
  t.equal(await releaseOwner(vm, B), false, 'releasing again: nothing to do');
  t.same(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
  t.equal(ownerPath({ id: 'x', disks: [{ path: '/dev/sdb' }] } as never), undefined, 'a VM on a block device has no record');
  t.match(ownerPath({ id: '../../etc/passwd', disks: [{ path: join(dir, 'd.raw') }] } as never), new RegExp(`^${dir}/\\.shadowvault-owner\\.[0-9a-f]{32}\\.json$`, 'u'), 'a hostile id is hashed, the record stays beside the disk');
});

t.test('concurrent claims by many appliances: exactly one wins', async (t) => {
  const dir = tempDir(t, 'sv-owner-race-');
  for (let round = 0; round < 5; round++) {
    const vm = vmIn(dir, `vm-${round}`);
    const who = Array.from({ length: 8 }, (_, i) => ({ id: `app-${i}`, name: `appliance-${i}` }));
    const results = await Promise.allSettled(who.map((me, i) => claimOwner(vm, me, `n${i}`)));
    const won = results.filter((r) => r.status === 'fulfilled');
    t.equal(won.length, 1, `round ${round}: one winner`);
    const owner = (await readOwner(vm))!;
    t.same((won[0] as PromiseFulfilledResult<{ record: OwnerRecord }>).value.record, owner, 'its record is the one on disk');
    for (const r of results) if (r.status === 'rejected') t.match(r.reason, { code: 'SV_ERR_AGENT_VM_OWNED', details: { owner: owner.appliance.id } });
  }
});

t.test('a damaged record: a claim refuses it, a takeover replaces it', async (t) => {
  const dir = tempDir(t, 'sv-owner-bad-');
  const vm = vmIn(dir);
  writeFileSync(ownerPath(vm)!, '{"version": 1, "vmId": "');
  t.equal(await codeOf(readOwner(vm)), 'SV_ERR_AGENT_OWNER_RECORD', 'reading it: coded error');
  t.equal(await codeOf(claimOwner(vm, A, 'n1')), 'SV_ERR_AGENT_OWNER_RECORD', 'a claim does not overwrite it');
  t.match((await claimOwner(vm, A, 'n1', { takeOver: true })).record, { appliance: A }, 'a takeover replaces it');
});

t.test('temp files of a writer killed mid-write: never a record, removed by the next claim once stale', async (t) => {
  const dir = tempDir(t, 'sv-owner-tmp-');
  const vm = vmIn(dir);
  const stale = `${ownerPath(vm)!}.tmp-999999-deadbeef`;
  const fresh = `${ownerPath(vm)!}.tmp-999998-cafecafe`;
  writeFileSync(stale, '{"version": 1, "vmId"');
  writeFileSync(fresh, '{"version": 1, "vmId"');
  utimesSync(stale, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
  t.equal(await readOwner(vm), undefined, 'a temp file is no record');
  await claimOwner(vm, A, 'n1');
  const left = readdirSync(dir).filter((n) => n.includes('.tmp-'));
  t.same(left, [fresh.split('/').at(-1)], 'the stale temp is removed, a young one (maybe another node\'s claim in flight) kept');
});

t.test('fuzz: mutated records and inventory owner fields give a record or their coded error', async (t) => {
  const r = rng(0x0e4e7);
  const vmId = 'vm-1';
  const good: OwnerRecord = { version: 1, vmId, appliance: A, since: '2026-12-03T07:00:00.000Z', host: 'n1', takenOverFrom: { ...B, at: '2026-12-03T07:01:00.000Z' } };
  const text = JSON.stringify(good);
  const values = [null, 1, -1, 'x', '', [], {}, true, 'é'.repeat(300), { id: 'x' }, { id: '', name: 'n' }];
  const seen = new Map<string, number>();
  const n = rounds(2000, 20_000);
  for (let i = 0; i < n; i++) {
    let input: string;
    const how = r();
    if (how < 0.4) {
      const b = Buffer.from(text);
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      input = b.toString('latin1');
    } else if (how < 0.6) input = text.slice(0, Math.floor(r() * text.length));
    else {
      const o = JSON.parse(text) as Record<string, unknown>;
      const keys = ['version', 'vmId', 'appliance', 'since', 'host', 'takenOverFrom', 'extra'];
      o[keys[Math.floor(r() * keys.length)]!] = values[Math.floor(r() * values.length)];
      input = JSON.stringify(o);
    }
    let outcome: string;
    try {
      const rec = parseOwnerRecord(input, '/x', vmId);
      t.equal(rec.vmId, vmId);
      outcome = 'ok';
    } catch (err) {
      if (!isSvError(err) || err.code !== 'SV_ERR_AGENT_OWNER_RECORD') throw err;
      outcome = err.code;
    }
    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    // the same value as an agent reports it in its inventory
    let owner: unknown;
    try {
      owner = JSON.parse(input);
    } catch {
      continue;
    }
    const inv = { host: { name: 'h', cluster: null, agentVersion: '1', hypervisor: { name: 'qemu', version: '7' } }, vms: [{ ...vmReport(vmId, 'v'), online: { possible: true, unmet: [] }, owner }] };
    try {
      checkInventory(inv);
    } catch (err) {
      if (!isSvError(err) || err.code !== 'SV_ERR_AGENT_BAD_PARAMS') throw err;
    }
  }
  t.ok((seen.get('ok') ?? 0) > 0 && (seen.get('SV_ERR_AGENT_OWNER_RECORD') ?? 0) > 0, `outcomes: ${JSON.stringify(Object.fromEntries(seen))}`);
});

t.test('an agent keeps several pairings in its data dir', async (t) => {
  const dir = tempDir(t, 'sv-pairings-');
  const cred = (appliance: string, agentId: string): AgentCredential => ({ version: 1, appliance, agentId, credential: `c-${agentId}`, fingerprint: 'none', pairedAt: '2026-12-03T07:00:00.000Z' });
  await saveCredential(dir, cred('http://127.0.0.1:1', 'a1'));
  await saveCredential(dir, cred('http://127.0.0.1:2', 'b1'));
  await saveCredential(dir, { ...cred('http://127.0.0.1:1', 'a1'), applianceId: A.id, applianceName: A.name });
  const all = await loadCredentials(dir);
  t.same(all.map((c) => [c.appliance, c.agentId]), [['http://127.0.0.1:1', 'a1'], ['http://127.0.0.1:2', 'b1']], 'both kept, the first in credential.json');
  t.equal(all[0]!.applianceId, A.id, 'the appliance id learned later is kept with its pairing');
  t.ok(credentialPath(dir).endsWith('credential.json'));
  t.equal(readdirSync(join(dir, 'pairings')).length, 1, 'the second one under pairings/');
});
