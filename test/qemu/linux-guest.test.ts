/**
 * A real Linux guest (Debian kernel, busybox, qemu-ga; one boot for the file): QMP finds the guest-agent
 * socket from org.qemu.guest_agent.0 alone, the agent answers ping/info, fsfreeze freeze/status/thaw, and
 * copies of the data disk taken while frozen, or between `stop` and `cont`, are clean ext4 whose files
 * all match their checksums.
 */
import t from 'tap';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasCode } from '../../src/errors/index.js';
import { findGuestAgentSocket, unixPath } from '../../src/qemu/ga-lookup.js';
import { GuestAgentClient } from '../../src/qemu/guest-agent.js';
import { cont, stop } from '../../src/qemu/qmp-commands.js';
import { tempDir } from '../helpers/env.js';
import { checkGuestFiles, fsck, startLinuxGuest } from '../helpers/linux-guest.js';

const dir = tempDir(t, 'sv-linux-');
const guest = await startLinuxGuest(t, dir);
t.comment(`Linux guest ready ${guest.bootMs} ms after QEMU start`);
const { vm } = guest;

t.test('QMP finds the guest-agent socket behind org.qemu.guest_agent.0', async (t) => {
  t.equal(await findGuestAgentSocket(vm.qmp), guest.guestAgentSocket);
  const err = await findGuestAgentSocket(vm.qmp, 'org.example.none').catch((e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_QEMU_GUEST_AGENT_MISSING'));
  t.match((err as Error).message, /ports found: \/machine\/peripheral\/qgaport \(org\.qemu\.guest_agent\.0\)/);
  t.equal(unixPath('disconnected:unix:/run/a.sock,server=on'), '/run/a.sock');
  t.equal(unixPath('pty:/dev/pts/3'), undefined);
});

t.test('guest agent: ping, info, fsfreeze; frozen copy is clean', async (t) => {
  const ga = await GuestAgentClient.connect(await findGuestAgentSocket(vm.qmp));
  t.teardown(() => ga.close());
  t.same(await ga.ping(), {});
  const info = await ga.info();
  t.ok(info.supported_commands.some((c) => c.name === 'guest-fsfreeze-freeze' && c.enabled), `qemu-ga ${info.version}`);
  t.equal(await ga.fsfreezeStatus(), 'thawed');
  const frozenAt = Date.now();
  t.equal(await ga.fsfreezeFreeze({ timeoutMs: 30_000 }), 1, 'one file system frozen (/data)');
  const copy = join(dir, 'frozen.raw');
  try {
    t.equal(await ga.fsfreezeStatus(), 'frozen');
    copyFileSync(guest.disk, copy);
  } finally {
    t.equal(await ga.fsfreezeThaw(), 1);
  }
  t.comment(`frozen for ${Date.now() - frozenAt} ms`);
  t.equal(await ga.fsfreezeStatus(), 'thawed');
  const check = fsck(copy);
  t.equal(check.status, 0, `e2fsck -fn on the frozen copy: ${check.output}`);
  const walk = checkGuestFiles(copy, dir);
  t.ok(walk.files > 0, `${walk.files} files`);
  t.same(walk.bad, []);
});

t.test('a copy taken between stop and cont is consistent after journal replay', async (t) => {
  await stop(vm.qmp);
  const copy = join(dir, 'stopped.raw');
  try {
    copyFileSync(guest.disk, copy);
  } finally {
    await cont(vm.qmp);
  }
  const check = fsck(copy, { replayJournal: true });
  t.equal(check.status, 0, `e2fsck -fn after replay: ${check.output}`);
  const walk = checkGuestFiles(copy, dir);
  t.ok(walk.files > 0, `${walk.files} files`);
  t.same(walk.bad, []);
});

t.test('the guest agent of a paused VM times out with a coded error', async (t) => {
  const ga = await GuestAgentClient.connect(guest.guestAgentSocket, { commandTimeoutMs: 500 });
  t.teardown(() => ga.close());
  await stop(vm.qmp);
  try {
    t.ok(hasCode(await ga.ping().catch((e: unknown) => e), 'SV_ERR_QEMU_TIMEOUT'));
  } finally {
    await cont(vm.qmp);
  }
  t.same(await ga.ping({ timeoutMs: 10_000 }), {}, 'after cont the next command resyncs past the late reply');
});
