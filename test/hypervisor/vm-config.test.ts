/**
 * VM configurations (issue 14) as hostile input, and a bounded fuzz of their parsers:
 * - src/hypervisor/config.ts: names with path traversal, separators, drive letters, NUL, hidden names, too many
 *   files, too many bytes, sizes and digests that do not match → SV_ERR_HYPERVISOR_BAD_CONFIGURATION;
 * - the simulation's `.sim-vmcx.json` (parseSimConfig) and the Hyper-V simulation's Import-VM on a file with
 *   a traversing disk name;
 * - a manifest whose configuration record was edited (a traversing name under a valid checksum);
 * - the agent's restore.open/import.vm with hostile names (methods called in process, a restore root on disk);
 * - the Hyper-V driver's cleanup of configuration exports a killed run left.
 * Fuzz: mutated descriptions, payloads, simulation files and manifests either parse into well-formed values or
 * throw a catalogued code; never a TypeError. Seeded; 1500 cases (15,000 with SHADOWVAULT_SOAK=1).
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prng } from '../../bench/data.js';
import { hasCode, type SvErrorCode } from '../../src/errors/index.js';
import { CONFIG_LIMITS, checkConfiguration, describeConfiguration, joinConfiguration, packConfiguration, parseConfigDescription, type VmConfiguration } from '../../src/hypervisor/config.js';
import { SimulatedHyperVHost } from '../../src/hypervisor/hyperv/simulated-host.js';
import { HyperVDriver } from '../../src/hypervisor/hyperv/driver.js';
import { SIM_CONFIG_LABEL, encodeSimConfig, parseSimConfig, type SimConfig } from '../../src/hypervisor/hyperv/sim/config-file.js';
import { createMethods } from '../../src/agent/methods/index.js';
import { encodeManifest, parseManifest, type PointManifest } from '../../storage/manifest.js';
import { FileDriver } from '../helpers/file-driver.js';
import { tempDir } from '../helpers/env.js';
import { rounds } from '../helpers/soak.js';

const BAD = 'SV_ERR_HYPERVISOR_BAD_CONFIGURATION';
const cfg = (files: Array<{ name: string; data: Uint8Array }>): VmConfiguration => ({ format: 'hyperv-vmcx', version: '9.0', simulated: false, files });
const refused = (t: Test, fn: () => unknown, code: SvErrorCode, what: string): void => {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  t.ok(hasCode(err, code), `${what}: ${String((err as Error | undefined)?.message ?? 'accepted')}`);
};

const HOSTILE_NAMES = ['../x.vmcx', '..', '.', 'a/b.vmcx', 'a\\b.vmcx', 'C:x.vmcx', 'x\0.vmcx', '.hidden', ' lead', 'trail.', '', 'x'.repeat(129), 'con:', '/etc/passwd'];

t.test('configuration names, counts and sizes: coded refusals', async (t) => {
  const one = new Uint8Array([1, 2, 3]);
  t.ok(checkConfiguration(cfg([{ name: '6C2E5A1F-0000-4000-8000-00000000ABCD.vmcx', data: one }, { name: 'x.vmgs', data: one }]), 'ok'), 'real Hyper-V names pass');
  for (const name of HOSTILE_NAMES) refused(t, () => checkConfiguration(cfg([{ name, data: one }]), 'test'), BAD, `name ${JSON.stringify(name)}`);
  refused(t, () => checkConfiguration(cfg([]), 'test'), BAD, 'no files');
  refused(t, () => checkConfiguration(cfg([{ name: 'a.vmcx', data: one }, { name: 'A.VMCX', data: one }]), 'test'), BAD, 'the same name twice (ignoring case)');
  refused(t, () => checkConfiguration(cfg(Array.from({ length: CONFIG_LIMITS.files + 1 }, (_, i) => ({ name: `f${i}`, data: one }))), 'test'), BAD, 'too many files');
  refused(t, () => checkConfiguration(cfg([{ name: 'big.vmrs', data: new Uint8Array(CONFIG_LIMITS.totalBytes + 1) }]), 'test'), BAD, 'too many bytes');
  refused(t, () => checkConfiguration(cfg([{ name: 'shadowvault-configuration.json', data: one }]), 'test'), BAD, 'the description\'s own name');
  const good = cfg([{ name: 'a.vmcx', data: one }, { name: 'b.vmrs', data: new Uint8Array([9]) }]);
  const d = describeConfiguration(good);
  t.same(joinConfiguration(parseConfigDescription(JSON.parse(JSON.stringify(d)), 'wire'), packConfiguration(good), 'wire').files.map((f) => f.name), ['a.vmcx', 'b.vmrs']);
  refused(t, () => joinConfiguration(d, new Uint8Array(3), 'wire'), BAD, 'payload shorter than the sizes');
  refused(t, () => joinConfiguration(d, new Uint8Array([1, 2, 4, 9]), 'wire'), BAD, 'digest mismatch');
  refused(t, () => parseConfigDescription({ ...d, files: [{ ...d.files[0], size: 2 ** 60 }] }, 'wire'), BAD, 'huge size');
  refused(t, () => parseConfigDescription({ ...d, files: [{ ...d.files[0], name: '../../etc/shadow' }] }, 'wire'), BAD, 'traversal in a description');
  refused(t, () => parseConfigDescription({ ...d, extra: 1 }, 'wire'), BAD, 'unknown field');
  refused(t, () => parseConfigDescription({ ...d, format: 'vmware' }, 'wire'), BAD, 'unknown format');
});

const simConfig: SimConfig = {
  simulation: SIM_CONFIG_LABEL, id: 'a', name: 'vm', generation: 2, configurationVersion: '9.0',
  disks: [{ controllerType: 'SCSI', controllerNumber: 0, controllerLocation: 0, file: 'disk0.vhdx', virtualSize: 64 << 20 }],
};

t.test('the simulation\'s configuration file and Import-VM: traversal refused', async (t) => {
  t.same(parseSimConfig(encodeSimConfig(simConfig), 'x'), simConfig);
  for (const file of ['../disk0.vhdx', '/tmp/disk0.vhdx', 'sub/disk0.vhdx']) {
    refused(t, () => parseSimConfig(encodeSimConfig({ ...simConfig, disks: [{ ...simConfig.disks[0]!, file }] }), 'x'), BAD, `disk file ${file}`);
  }
  refused(t, () => parseSimConfig(JSON.stringify({ ...simConfig, simulation: 'real' }), 'x'), BAD, 'not the simulation\'s file');
  refused(t, () => parseSimConfig(`${' '.repeat(70_000)}{}`, 'x'), BAD, 'too large');
  const dir = tempDir(t, 'sv-vmconfig-sim-');
  const host = new SimulatedHyperVHost(join(dir, 'sim'));
  const folder = join(dir, 'import');
  mkdirSync(folder);
  writeFileSync(join(dir, 'outside.vhdx'), 'not a disk');
  writeFileSync(join(folder, 'a.sim-vmcx.json'), encodeSimConfig({ ...simConfig, disks: [{ ...simConfig.disks[0]!, file: '../outside.vhdx' }] }));
  const err = await host.importVm(join(folder, 'a.sim-vmcx.json'), folder).catch((e: unknown) => e);
  t.ok(hasCode(err, BAD), `Import-VM of a traversing disk name: ${String((err as Error).message)}`);
  t.same(await host.listVms(), [], 'nothing imported');
});

t.test('Hyper-V cleanupLeftovers removes configuration exports a killed run left', async (t) => {
  const dir = tempDir(t, 'sv-vmconfig-left-');
  const driver = new HyperVDriver({ host: new SimulatedHyperVHost(join(dir, 'sim')), stateDir: join(dir, 'state') });
  t.teardown(() => driver.close());
  mkdirSync(join(dir, 'state', 'config-exports', 'export-0badf00d-x1', 'Virtual Machines'), { recursive: true });
  writeFileSync(join(dir, 'state', 'config-exports', 'export-0badf00d-x1', 'Virtual Machines', 'a.vmcx'), 'x');
  const report = await driver.cleanupLeftovers();
  t.same(report.removed, ['configuration export export-0badf00d-x1']);
  t.same(readdirSync(join(dir, 'state', 'config-exports')), []);
});

function manifestWith(configuration: unknown): string {
  const m = {
    format: 'shadowvault-point', version: 1, id: '20261203T000000000Z-abcdef', source: 'vm', time: '2026-12-03T00:00:00.000Z', kind: 'initial',
    consistency: 'crash', changeRef: null, parent: null, blockSize: 65536, fanout: 1024,
    disks: [{ index: 0, name: 'd', format: 'raw', virtualSize: 65536, root: '0'.repeat(64), depth: 1 }],
    configuration,
    stats: { bytesTotal: 65536, bytesRead: 0, bytesChanged: 0, bytesNew: 0, bytesStored: 0, blocksChanged: 0, blocksNew: 0, blocksZero: 1, pagesWritten: 0, durationMs: 1 },
  };
  return encodeManifest(m as unknown as PointManifest);
}

t.test('a manifest whose configuration names a traversing file is refused, even with a valid checksum', async (t) => {
  const file = { name: 'a.vmcx', size: 3, sha256: createHash('sha256').update('abc').digest('hex'), root: 'ab'.repeat(32), depth: 1 };
  const ok = parseManifest(manifestWith({ format: 'hyperv-vmcx', version: '9.0', simulated: false, files: [file] }), 'p');
  t.equal(ok.configuration?.files[0]?.name, 'a.vmcx');
  refused(t, () => parseManifest(manifestWith({ format: 'hyperv-vmcx', version: '9.0', simulated: false, files: [{ ...file, name: '../../a.vmcx' }] }), 'p'), 'SV_ERR_STORE_CORRUPT_MANIFEST', 'traversing name');
  refused(t, () => parseManifest(manifestWith({ format: 'hyperv-vmcx', version: '9.0', simulated: false, files: [{ ...file, root: 'x' }] }), 'p'), 'SV_ERR_STORE_CORRUPT_MANIFEST', 'bad root');
});

t.test('agent methods: hostile import names and files are refused, nothing written outside the folder', async (t) => {
  const dir = tempDir(t, 'sv-vmconfig-agent-');
  const root = join(dir, 'restores');
  const driver = new FileDriver([], join(dir, 'snaps'));
  const m = createMethods({ driver, open: async () => { throw new Error('unused'); }, restoreRoots: [root] });
  t.teardown(() => m.close());
  const h = m.handlers;
  const sig = new AbortController().signal;
  const { handle, folder } = (await h['import.open']({ vmId: 'v', name: '../../evil' }, undefined, sig)).result;
  t.ok(folder.startsWith(`${root}/`) && !folder.slice(root.length + 1).includes('/'), `one new folder under the root: ${folder}`);
  for (const fileName of ['../x', '..', 'a/b', '/etc/passwd', '.hidden']) {
    const err = await h['restore.open']({ vmId: 'v', name: 'n', virtualSize: 1, format: 'raw', into: handle, fileName }, undefined, sig).catch((e: unknown) => e);
    t.ok(hasCode(err, BAD), `restore.open fileName ${JSON.stringify(fileName)}: ${String((err as Error).message)}`);
  }
  const desc = describeConfiguration(cfg([{ name: 'a.vmcx', data: new Uint8Array([1]) }]));
  const missing = await h['import.vm']({ handle, configuration: desc, disks: ['d.vhdx'] }, undefined, sig).catch((e: unknown) => e);
  t.ok(hasCode(missing, 'SV_ERR_AGENT_RESTORE_FAILED'), `missing files: ${String((missing as Error).message)}`);
  const traversing = await h['import.vm']({ handle, configuration: desc, disks: ['../d.vhdx'] }, undefined, sig).catch((e: unknown) => e);
  t.ok(hasCode(traversing, BAD), 'a traversing disk name');
  const forged = await h['import.vm']({ handle, configuration: { ...desc, files: [{ ...desc.files[0]!, name: '../a.vmcx' }] } as never, disks: ['d.vhdx'] }, undefined, sig).catch((e: unknown) => e);
  t.ok(hasCode(forged, BAD), 'a traversing configuration name');
  await h['import.close']({ handle, keep: false }, undefined, sig);
  t.notOk(existsSync(folder), 'import.close without keep removes the folder');
  t.same(readdirSync(root), [], 'nothing else under the root');
});

t.test('agent: import.open removes unfinished imports a killed agent left, never an imported VM\'s folder', async (t) => {
  const dir = tempDir(t, 'sv-vmconfig-stale-');
  const root = join(dir, 'restores');
  const m = createMethods({ driver: new FileDriver([], join(dir, 'snaps')), open: async () => { throw new Error('unused'); }, restoreRoots: [root] });
  t.teardown(() => m.close());
  const name = (n: string): string => `${n}-import-2026-12-01T10-00-00-000Z-ab${n.length}${n.length}`;
  const old = new Date(Date.now() - 3600_000);
  for (const [n, marker, when] of [['killed', true, old], ['young', true, new Date()], ['imported', false, old]] as const) {
    mkdirSync(join(root, name(n)), { recursive: true });
    writeFileSync(join(root, name(n), 'a.vmcx'), 'x');
    if (marker) {
      writeFileSync(join(root, name(n), '.shadowvault-import'), '{}');
      utimesSync(join(root, name(n), '.shadowvault-import'), when, when);
    }
  }
  const { folder } = (await m.handlers['import.open']({ vmId: 'v', name: 'vm' }, undefined, new AbortController().signal)).result;
  t.notOk(existsSync(join(root, name('killed'))), 'an unfinished import older than the grace is removed');
  t.ok(existsSync(join(root, name('young'))), 'a young one is kept (it may be another run\'s)');
  t.ok(existsSync(join(root, name('imported'))), 'a folder without the marker (an imported VM lives there) is kept');
  t.ok(existsSync(join(folder, '.shadowvault-import')), 'the new folder carries the marker until import.vm succeeds');
});

t.test(`fuzz: ${rounds(1500, 15_000)} mutated descriptions, payloads, simulation files and manifests`, async (t) => {
  const rand = prng(14);
  const good = cfg([{ name: 'a.vmcx', data: new Uint8Array([1, 2, 3]) }, { name: 'b.vmgs', data: new Uint8Array(40).fill(7) }]);
  const desc = describeConfiguration(good);
  const payload = packConfiguration(good);
  const sim = encodeSimConfig(simConfig);
  const file = { name: 'a.vmcx', size: 3, sha256: desc.files[0]!.sha256, root: 'ab'.repeat(32), depth: 1 };
  const manifest = manifestWith({ ...desc, files: [file] });
  const odd = [null, true, -1, 1.5, 2 ** 60, '', '..', '../x', 'a/b', [], {}, [1], { a: 1 }, 'x'.repeat(300)];
  const mutate = (v: unknown): unknown => {
    if (rand() < 0.12) return odd[Math.floor(rand() * odd.length)];
    if (Array.isArray(v)) return rand() < 0.08 ? v[0] : v.map(mutate);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (rand() > 0.06) out[k] = mutate(x);
      return out;
    }
    return v;
  };
  const flip = (s: string): string => {
    const b = Buffer.from(s);
    for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n; i++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    return rand() < 0.2 ? b.subarray(0, Math.floor(rand() * b.length)).toString('latin1') : b.toString('latin1');
  };
  let accepted = 0;
  let failures = 0;
  for (let i = 0; i < rounds(1500, 15_000); i++) {
    const kind = i % 4;
    try {
      if (kind === 0) {
        const d = parseConfigDescription(mutate(JSON.parse(JSON.stringify(desc))), 'fuzz');
        for (const f of d.files) if (f.name.includes('/') || f.name.includes('\\') || f.name.startsWith('.')) throw new Error(`accepted name ${f.name}`);
      } else if (kind === 1) {
        const p = Buffer.from(payload);
        if (rand() < 0.7) p[Math.floor(rand() * p.length)]! ^= 1 + Math.floor(rand() * 255);
        joinConfiguration(desc, rand() < 0.3 ? p.subarray(0, Math.floor(rand() * p.length)) : p, 'fuzz');
      } else if (kind === 2) {
        const c = parseSimConfig(rand() < 0.5 ? flip(sim) : JSON.stringify(mutate(JSON.parse(sim))), 'fuzz');
        for (const d of c.disks) if (d.file.includes('/') || d.file.startsWith('.')) throw new Error(`accepted disk file ${d.file}`);
      } else {
        parseManifest(rand() < 0.5 ? flip(manifest) : encodeManifest(mutate(JSON.parse(manifest)) as PointManifest), 'fuzz');
      }
      accepted++;
    } catch (err) {
      if (!hasCode(err, BAD, 'SV_ERR_STORE_CORRUPT_MANIFEST', 'SV_ERR_STORE_BAD_VERSION')) {
        failures++;
        if (failures <= 3) t.fail(`case ${i} (kind ${kind}): ${(err as Error).stack ?? String(err)}`);
      }
    }
  }
  t.equal(failures, 0, `every refusal is coded (${accepted} mutations were accepted as well-formed)`);
});
