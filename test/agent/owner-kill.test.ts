/**
 * VM ownership records (src/agent/owner.ts) under kill -9: a child process claims, takes over and releases one
 * VM's record for appliances A and B in a loop (test/helpers/owner-child.ts), and is killed with SIGKILL at a
 * different moment each round (SV_OWNER_KILL_ROUNDS, default 12; 60 with SHADOWVAULT_SOAK=1). After each kill:
 *   - the record reads cleanly (never torn), and is absent or names exactly one of A and B;
 *   - the appliance it does not name is refused (SV_ERR_AGENT_VM_OWNED, which is what view.open and restore.open
 *     answer it) and cannot release it; the owner's own claim keeps it unchanged;
 *   - a VM left free is claimed by exactly one of two concurrent claims;
 *   - a temp file of the killed writer is never read as the record.
 */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { claimOwner, readOwner, releaseOwner } from '../../src/agent/owner.js';
import { hasCode } from '../../src/errors/index.js';
import type { VmInfo } from '../../src/hypervisor/driver.js';
import { prng } from '../../bench/data.js';
import { REPO_ROOT, tempDir } from '../helpers/env.js';
import { rounds } from '../helpers/soak.js';

const dir = tempDir(t, 'sv-owner-kill-');
const disk = join(dir, 'vm.raw');
writeFileSync(disk, '');
const vm = { id: 'vm-kill', disks: [{ path: disk }] } as unknown as Pick<VmInfo, 'id' | 'disks'>;
const A = { id: 'appliance-a-id', name: 'appliance-a' };
const B = { id: 'appliance-b-id', name: 'appliance-b' };
const ROUNDS = Number(process.env.SV_OWNER_KILL_ROUNDS ?? rounds(12, 60));
const rand = prng(0x6f776e72);

/** Start the loop, let it run ms after READY, kill -9 it; resolves with the operations it finished. */
async function runAndKill(ms: number): Promise<number> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'build', 'test', 'helpers', 'owner-child.js'), disk], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('READY')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`owner-child exited (${String(code)}) before READY`)));
  });
  await sleep(ms);
  child.kill('SIGKILL');
  await exited;
  return out.split('\n').filter((l) => l && l !== 'READY').length;
}

t.test('kill -9 at any moment of claim, takeover or release leaves one owner or none', async (t) => {
  let ops = 0;
  for (let round = 0; round < ROUNDS; round++) {
    ops += await runAndKill(Math.floor(rand() * 60));
    const rec = await readOwner(vm); // throws on a torn or damaged record
    if (rec) {
      t.ok(rec.appliance.id === A.id || rec.appliance.id === B.id, `round ${round}: the record names ${rec.appliance.name}`);
      const [owner, other] = rec.appliance.id === A.id ? [A, B] : [B, A];
      const refused = await claimOwner(vm, other, 'host-1').catch((e: unknown) => e);
      t.ok(hasCode(refused, 'SV_ERR_AGENT_VM_OWNED'), `round ${round}: ${other.name} is refused (SV_ERR_AGENT_VM_OWNED)`);
      t.equal(await releaseOwner(vm, other), false, `round ${round}: ${other.name} cannot release it`);
      t.same((await claimOwner(vm, owner, 'host-1')).record, rec, `round ${round}: ${owner.name}'s claim keeps the record`);
    } else {
      const both = await Promise.allSettled([claimOwner(vm, A, 'host-1'), claimOwner(vm, B, 'host-1')]);
      t.equal(both.filter((r) => r.status === 'fulfilled').length, 1, `round ${round}: free, and exactly one of two concurrent claims wins`);
      t.ok(both.some((r) => r.status === 'rejected' && hasCode(r.reason, 'SV_ERR_AGENT_VM_OWNED')), `round ${round}: the other is refused`);
    }
  }
  t.ok(ops > 0, `${ops} operations finished across ${ROUNDS} rounds (kills landed between and inside them)`);
  t.comment(`files beside the disk at the end: ${readdirSync(dir).join(', ')}`);
});
