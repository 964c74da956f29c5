/**
 * The agent as a real process against a real appliance process, with a real QEMU VM (the writer guest under
 * TCG) behind a QMP glob: `agents pair --json`, `agent --pair`, the VM in `vms --json` (UUID, disks,
 * online check), `hosts`; the agent restarted without a code reuses its credential; the appliance restarted
 * and the agent back on its own; a second VM picked up without operator action; a VM that goes away reported
 * stopped. Plus `agent` refusing plain http beyond loopback. The appliance and the agent are processes; the
 * operator's commands (and the polls waiting for the agent) run the CLI's main() in this process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { cli, serve, type Served } from '../api/serve-helper.js';
import { cliInProcess as cliIn } from '../helpers/cli.js';
import { CLI, childEnv, tempDir } from '../helpers/env.js';
import { startDriverVm } from '../helpers/driver-vm.js';
import { makeWriterDisk } from '../helpers/writer-guest.js';
import { until } from './helpers.js';

interface AgentProc {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function startAgentProc(args: string[]): AgentProc {
  const t0 = Date.now();
  const proc = spawn(process.execPath, [CLI, 'agent', '--poll', '0.3', ...args], { env: childEnv({ SHADOWVAULT_AGENT_KEEPALIVE_MS: '2000' }), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      try {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
      buf = buf.slice(i + 1);
    }
  });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  void exited.then((code) => {
    lines.push({ msg: 'exited', stderr });
    if (process.env.SV_TEST_AGENT_LOG) process.stderr.write(`agent exited ${code} after ${Date.now() - t0} ms\n`);
  });
  return { proc, lines, exited };
}

const connects = (a: AgentProc): number => a.lines.filter((l) => l.msg === 'agent connected').length;

/** SIGTERM, then SIGKILL after 20 s (a stuck process fails the test through its exit code, never hangs it). */
async function stopProc(p: { proc: ChildProcess; exited: Promise<number | null> }): Promise<number | null> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGTERM');
  const killer = setTimeout(() => p.proc.kill('SIGKILL'), 20_000);
  const code = await p.exited;
  clearTimeout(killer);
  return code;
}

t.test('agent process, appliance process, real VM', async (t) => {
  const began = Date.now();
  const dir = tempDir(t, 'sv-agent-e2e-');
  const vmDir = join(dir, 'vms');
  mkdirSync(vmDir);
  const disk = makeWriterDisk(join(dir, 'w1.raw'), 'raw');
  await startDriverVm(t, { dir: vmDir, name: 'w1', disks: [{ path: disk, format: 'raw' }], uuid: '0b6f4b1a-0000-4000-8000-000000000001' });
  let served: Served = await serve(['--data-dir', join(dir, 'appliance')]);
  t.teardown(() => stopProc(served));
  const env = { SHADOWVAULT_URL: served.url, SHADOWVAULT_TOKEN: readFileSync(join(dir, 'appliance', 'admin-token'), 'utf8').trim() };
  const pair = await cliIn(['agents', 'pair', '--json'], env);
  const { code } = JSON.parse(pair.stdout) as { code: string };
  const agentDir = join(dir, 'agent');
  const common = ['--appliance', served.url, '--data-dir', agentDir, '--name', 'kvm-e2e', '--qmp', join(vmDir, '*.drv.qmp')];
  let agent = startAgentProc([...common, '--pair', code]);
  t.teardown(() => stopProc(agent));

  const vms = await until('the VM on the appliance', async () => {
    const list = JSON.parse((await cliIn(['vms', '--json'], env)).stdout) as Record<string, unknown>[];
    return list.length === 1 ? list : undefined;
  }, 90_000);
  t.match(vms[0], {
    id: '0b6f4b1a-0000-4000-8000-000000000001', name: 'w1', host: 'kvm-e2e', state: 'running',
    disks: [{ format: 'raw', virtualSize: 64 << 20, path: disk, snapshottable: true }],
    online: { possible: false, unmet: ['guest-agent', 'guest-freeze'] },
  });
  const hosts = JSON.parse((await cliIn(['hosts', '--json'], env)).stdout) as Record<string, unknown>[];
  t.match(hosts, [{ name: 'kvm-e2e', connected: true, hypervisor: { name: 'qemu', version: /^\d+\.\d+/ }, vms: 1 }]);
  const human = await cliIn(['vms'], env);
  t.match(human.stdout, /w1 {2}host=kvm-e2e {2}running {2}1 disk\(s\) {2}offline backup \(/);

  // restarted without a code: the stored credential is reused
  t.equal(await stopProc(agent), 0, 'the agent stops cleanly on SIGTERM');
  await until('offline', async () => ((JSON.parse((await cliIn(['hosts', '--json'], env)).stdout) as { connected: boolean }[])[0]?.connected ? undefined : true));
  agent = startAgentProc(common);
  await until('reconnected with its stored credential', () => (connects(agent) >= 1 ? true : undefined), 60_000);
  t.equal((JSON.parse((await cliIn(['agents', 'list', '--json'], env)).stdout) as unknown[]).length, 1, 'still one agent');

  // the appliance restarts: the agent comes back by itself
  const before = connects(agent);
  const port = new URL(served.url).port;
  await stopProc(served);
  served = await serve(['--data-dir', join(dir, 'appliance'), '--listen', `127.0.0.1:${port}`]);
  await until('reconnected after the appliance restart', () => (connects(agent) > before ? true : undefined), 60_000);

  // a second VM appears: reported without operator action; the first goes away: reported stopped
  const disk2 = makeWriterDisk(join(dir, 'w2.raw'), 'raw');
  const second = await startDriverVm(t, { dir: vmDir, name: 'w2', disks: [{ path: disk2, format: 'raw' }], uuid: '0b6f4b1a-0000-4000-8000-000000000002' });
  await until('two VMs', async () => ((JSON.parse((await cliIn(['vms', '--json'], env)).stdout) as unknown[]).length === 2 ? true : undefined), 60_000);
  await second.vm.shutdown();
  // a VM the driver never took a view of has no disks on record: it leaves the inventory (else: 'stopped')
  await until('w2 gone', async () => {
    const list = JSON.parse((await cliIn(['vms', '--json'], env)).stdout) as { name: string; state: string }[];
    return list.some((v) => v.name === 'w2' && v.state !== 'stopped') ? undefined : list;
  }, 60_000);
  t.comment(`${Date.now() - began} ms`);
  t.equal(await stopProc(agent), 0, 'the agent stops cleanly after it all');
  for (const l of agent.lines.filter((x) => /ending the process|exited/u.test(String(x.msg)))) t.comment(JSON.stringify(l));
  t.comment(`agent stopped: ${Date.now() - began} ms`);
  t.equal(await stopProc(served), 0, 'the appliance stops cleanly');
  t.comment(`appliance stopped: ${Date.now() - began} ms`);
});

t.test('the agent refuses plain http beyond loopback', async (t) => {
  const r = await cli(['agent', '--appliance', 'http://192.0.2.9:8470', '--pair', `${'a'.repeat(8)}-${'b'.repeat(32)}`, '--data-dir', tempDir(t), '--qmp', '/nonexistent/*.qmp'], {});
  t.equal(r.code, 1);
  t.match(r.stderr, /SV_ERR_AGENT_INSECURE/);
});
