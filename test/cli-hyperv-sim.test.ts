// The CLI of the Hyper-V SIMULATION as a user runs it (README "Hyper-V"): hyperv-sim create/start/list/stop,
// and `agent --driver` refusing what it does not know, with coded usage errors.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { childEnv, CLI, nodeCommand, tempDir } from './helpers/env.js';

function sv(...args: string[]) {
  return spawnSync(...nodeCommand([CLI, ...args]), { encoding: 'utf8', env: childEnv() });
}

t.test('hyperv-sim: create, start (the guest outlives the CLI), list, stop', async (t) => {
  const root = join(tempDir(t, 'sv-cli-hvsim-'), 'sim');
  const created = sv('hyperv-sim', 'create', '--sim-root', root, '--name', 'demo', '--disk-mib', '8');
  t.equal(created.status, 0, created.stderr);
  const id = created.stdout.trim();
  t.match(id, /^[0-9a-f-]{36}$/u);
  const started = sv('hyperv-sim', 'start', '--sim-root', root, '--vm', 'demo');
  t.teardown(() => void sv('hyperv-sim', 'stop', '--sim-root', root, '--vm', id));
  t.equal(started.status, 0, started.stderr);
  t.match(started.stdout, /guest process \d+ \(simulation\)/u);
  const listed = sv('hyperv-sim', 'list', '--sim-root', root, '--json');
  t.match(JSON.parse(listed.stdout), [{ id, name: 'demo', state: 'Running', disks: [{ format: 'VHDX', virtualSize: 8 << 20 }] }]);
  t.equal(sv('hyperv-sim', 'stop', '--sim-root', root, '--vm', 'demo').status, 0);
  t.match(sv('hyperv-sim', 'list', '--sim-root', root).stdout, /demo {2}Off .*\(simulation\)/u);
  const missing = sv('hyperv-sim', 'start', '--sim-root', root, '--vm', 'nope');
  t.match(missing.stderr, /SV_ERR_HYPERVISOR_VM_NOT_FOUND/u);
});

t.test('agent --driver: unknown driver, hyperv-sim without --sim-root, qemu without --qmp', async (t) => {
  const base = ['agent', '--appliance', 'http://127.0.0.1:9'];
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--driver', 'vmware'], /--driver "vmware": expected qemu, hyperv or hyperv-sim/u],
    [[...base, '--driver', 'hyperv-sim'], /needs --sim-root/u],
    [[...base], /--driver qemu needs at least one --qmp/u],
  ];
  for (const [args, message] of cases) {
    const r = sv(...args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, /SV_ERR_CLI_BAD_USAGE/u);
    t.match(r.stderr, message);
  }
});
