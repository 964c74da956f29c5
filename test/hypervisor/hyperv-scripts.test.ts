/**
 * The Hyper-V host layer's PowerShell side, checked without Windows (nothing here runs PowerShell):
 * - every script in hyperv-scripts/ parses with a real PowerShell grammar (tree-sitter-powershell): no ERROR or
 *   MISSING node; each script's param() block declares exactly the parameters powershell.ts passes; each
 *   dot-sources _common.ps1 and ends through Write-SvResult; no WQL -Filter/-Query (caller values are compared
 *   with -eq, never pasted into a query);
 * - the JSON output parsers (records.ts) against outputs written from the documented CIM classes
 *   (test/fixtures/hyperv/*.json, each saying which class and properties it follows), PowerShell 5.1's
 *   unwrapped one-element arrays included, and malformed outputs refused with SV_ERR_HYPERV_BAD_OUTPUT;
 * - PowerShellHyperVHost's process boundary, with an argv-echoing stand-in for powershell.exe (a shell script
 *   this test writes, named as such): values arrive as separate argv entries, byte for byte.
 */
import t from 'tap';
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Parser from 'tree-sitter';
import PowerShell from 'tree-sitter-powershell';
import { hasCode } from '../../src/errors/index.js';
import { PowerShellHyperVHost, SCRIPT_PARAMS, scriptsDir, type ScriptName } from '../../src/hypervisor/hyperv/powershell.js';
import {
  parseBoolean, parseCheckpoint, parseCheckpoints, parseDiskChanges, parseEnvelope, parseReferencePoint, parseReferencePoints, parseString,
  parseStrings, parseVms,
} from '../../src/hypervisor/hyperv/records.js';
import { REPO_ROOT, tempDir } from '../helpers/env.js';

interface SyntaxNode {
  type: string;
  text: string;
  isMissing: boolean;
  children: SyntaxNode[];
}

const parser = new Parser();
parser.setLanguage(PowerShell as Parameters<typeof parser.setLanguage>[0]);
const dir = scriptsDir();
const fixtures = join(REPO_ROOT, 'test', 'fixtures', 'hyperv');

function* walk(n: SyntaxNode): Generator<SyntaxNode> {
  yield n;
  for (const c of n.children) yield* walk(c);
}

function parse(file: string): SyntaxNode {
  return parser.parse(readFileSync(join(dir, file), 'utf8')).rootNode as unknown as SyntaxNode;
}

function fixture(name: string): string {
  return readFileSync(join(fixtures, name), 'utf8');
}

t.test('every script parses with the PowerShell grammar', async (t) => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ps1')).sort();
  t.same(files.filter((f) => f !== '_common.ps1'), Object.keys(SCRIPT_PARAMS).sort(), 'one script per host-layer script name, no stray ones');
  for (const f of files) {
    const bad = [...walk(parse(f))].filter((n) => n.type === 'ERROR' || n.isMissing);
    t.same(bad.map((n) => `${n.type}: ${n.text.slice(0, 60)}`), [], `${f}: no ERROR or MISSING node`);
  }
});

t.test('each script declares exactly the parameters the TS side passes', async (t) => {
  for (const [file, params] of Object.entries(SCRIPT_PARAMS) as Array<[ScriptName, readonly string[]]>) {
    const root = parse(file);
    const block = [...walk(root)].find((n) => n.type === 'param_block');
    t.ok(block, `${file} has a param() block`);
    const declared = [...walk(block!)].filter((n) => n.type === 'script_parameter')
      .map((p) => p.children.find((c) => c.type === 'variable')?.text.replace(/^\$/u, '') ?? '?');
    t.same(declared.sort(), [...params].sort(), `${file}: param(${declared.join(', ')})`);
    const commands = [...walk(root)].filter((n) => n.type === 'command');
    const names = commands.map((c) => c.children.find((x) => x.type === 'command_name')?.text ?? c.children[0]?.text ?? '');
    t.ok(root.text.includes(". (Join-Path $PSScriptRoot '_common.ps1')"), `${file} dot-sources _common.ps1`);
    t.ok(names.includes('Write-SvResult'), `${file} prints its result through Write-SvResult`);
    const queries = [...walk(root)].filter((n) => n.type === 'command_parameter' && /^-(Filter|Query)$/iu.test(n.text));
    t.same(queries.map((q) => q.text), [], `${file}: no WQL filter built from values`);
  }
});

t.test('outputs written from the CIM classes parse into typed records', async (t) => {
  const vms = parseVms('vm-inventory.ps1', parseEnvelope('vm-inventory.ps1', fixture('vm-inventory.json')));
  t.equal(vms.length, 2);
  t.match(vms[0], { name: 'sql01', state: 'Running', generation: 2, configurationVersion: '9.0', storage: 'CSV', cluster: { ownerNode: 'HV-NODE2', groupState: 'Online' } });
  t.equal(vms[0]!.disks.length, 2);
  t.equal(vms[0]!.disks[1]!.virtualSize, 1099511627776, 'a 1 TiB size stays exact');
  t.match(vms[1], { name: 'legacy-2012r2', state: 'Saved', generation: 1, storage: 'SMB', cluster: null, backup: { enabled: false, guestProblems: [] } });
  t.equal(vms[1]!.disks.length, 1, 'a one-element array unwrapped by PowerShell 5.1 is read as one element');
  t.equal(vms[1]!.disks[0]!.format, 'VHD');

  const cps = parseCheckpoints('checkpoints.ps1', parseEnvelope('checkpoints.ps1', fixture('checkpoints.json')));
  t.equal(cps.length, 1);
  t.match(cps[0], { name: 'sv-0a1b2c3d', kind: 'Recovery', frozen: [{ diskIdentifier: '4F1A9C27-6E3B-4D80-9C5A-1B2E3F405162' }, {}] });

  const refs = parseReferencePoints('reference-points.ps1', parseEnvelope('reference-points.ps1', fixture('reference-points.json')));
  t.match(refs, [{ name: 'sv-0a1b2c3d', created: '', rctIds: [{ rctId: /^rctX:/u }, { rctId: /^rctX:/u }] }]);

  const ch = parseDiskChanges('disk-changes.ps1', parseEnvelope('disk-changes.ps1', fixture('disk-changes.json')), 0, 1 << 30);
  t.equal(ch.processedByteLength, 603979776, 'short: the caller asks again');
  t.same(ch.ranges, [[0, 1048576], [268435456, 4194304], [536870912, 1048576]]);
});

t.test('every other script\'s output, from its fixture, parses with the parser PowerShellHyperVHost uses for it', async (t) => {
  const out = (script: string, file: string): Parameters<typeof parseVms>[1] => parseEnvelope(script, fixture(file));
  t.match(parseCheckpoint('create-checkpoint.ps1', out('create-checkpoint.ps1', 'create-checkpoint.json')), {
    name: 'sv-5e6f7a8b', kind: 'Recovery', frozen: [{ diskIdentifier: '4F1A9C27-6E3B-4D80-9C5A-1B2E3F405162', path: /sql01\.vhdx$/u }],
  });
  t.match(parseReferencePoint('convert-reference-point.ps1', out('convert-reference-point.ps1', 'convert-reference-point.json')), {
    name: 'sv-5e6f7a8b', rctIds: [{ diskIdentifier: '4F1A9C27-6E3B-4D80-9C5A-1B2E3F405162', rctId: /:00000008$/u }],
  });
  const files = parseStrings('export-config.ps1', out('export-config.ps1', 'export-config.json'));
  t.same(files.map((f) => f.split('.').pop()), ['vmcx', 'vmrs', 'vmgs']);
  t.match(parseStrings('export-config.ps1', out('export-config.ps1', 'export-config-xml.json')), [/\.xml$/u], 'one .xml printed as a bare string');
  t.equal(parseString('import-vm.ps1', out('import-vm.ps1', 'import-vm.json')), 'c3b2a190-8f7e-4d6c-b5a4-938271605f4e');
  t.equal(parseBoolean('merge-setting.ps1', out('merge-setting.ps1', 'merge-setting.json')), false);
  t.throws(() => parseStrings('export-config.ps1', [1]), { code: 'SV_ERR_HYPERV_BAD_OUTPUT' });
  t.throws(() => parseString('import-vm.ps1', { value: 7 }), { code: 'SV_ERR_HYPERV_BAD_OUTPUT' });
});

t.test('failure envelopes become their coded errors', async (t) => {
  const rct = (() => { try { parseEnvelope('disk-changes.ps1', fixture('failure-rct-invalid.json')); return undefined; } catch (e) { return e; } })();
  t.ok(hasCode(rct, 'SV_ERR_HYPERV_RCT_INVALID'), String(rct));
  t.match((rct as { details: unknown }).details, { returnValue: 32773 });
  const job = (() => { try { parseEnvelope('create-checkpoint.ps1', fixture('failure-job.json')); return undefined; } catch (e) { return e; } })();
  t.ok(hasCode(job, 'SV_ERR_HYPERV_JOB_FAILED'), String(job));
  t.match((job as { details: unknown }).details, { returnValue: 4096, errorCode: 32768 });
});

t.test('malformed outputs are refused with SV_ERR_HYPERV_BAD_OUTPUT naming the property', async (t) => {
  const inv = JSON.parse(fixture('vm-inventory.json')) as { data: Array<Record<string, unknown>> };
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['not JSON', () => parseEnvelope('x.ps1', 'WARNING: something\n{'), /not JSON/u],
    ['no ok', () => parseEnvelope('x.ps1', '{"data":1}'), /\$\.ok/u],
    ['unknown failure kind', () => parseEnvelope('x.ps1', '{"ok":false,"error":{"kind":"weird","message":"m"}}'), /\$\.error\.kind/u],
    ['generation 3', () => parseVms('vm-inventory.ps1', [{ ...inv.data[0], generation: 3 }]), /generation/u],
    ['size as a string', () => parseVms('vm-inventory.ps1', [{ ...inv.data[0], disks: [{ ...(inv.data[0]!.disks as object[])[0], virtualSize: '10' }] }]), /disks\[0\]\.virtualSize/u],
    ['a state not documented', () => parseVms('vm-inventory.ps1', [{ ...inv.data[0], state: 'Exploded' }]), /state/u],
    ['ranges out of order', () => parseDiskChanges('d', { ranges: [{ offset: 10, length: 5 }, { offset: 0, length: 5 }], processedByteLength: 100 }, 0, 100), /ranges\[1\]/u],
    ['range past processed', () => parseDiskChanges('d', { ranges: [{ offset: 90, length: 20 }], processedByteLength: 100 }, 0, 100), /ranges\[0\]/u],
    ['processed more than asked', () => parseDiskChanges('d', { ranges: [], processedByteLength: 101 }, 0, 100), /processedByteLength/u],
  ];
  for (const [name, fn, where] of cases) {
    const err = (() => { try { fn(); return undefined; } catch (e) { return e; } })();
    t.ok(hasCode(err, 'SV_ERR_HYPERV_BAD_OUTPUT'), `${name}: ${String(err)}`);
    t.match(String((err as Error)?.message), where, `${name}: names where`);
  }
});

t.test('PowerShellHyperVHost: values reach the script as separate argv entries (argv-echo stand-in for powershell.exe)', async (t) => {
  const tmp = tempDir(t, 'sv-ps-');
  const echo = join(tmp, 'argv-echo');
  writeFileSync(echo, `#!/bin/sh\nexec "${process.execPath}" -e 'process.stdout.write(JSON.stringify({ok:true,data:{value:JSON.stringify(process.argv.slice(1))}}))' -- "$@"\n`);
  chmodSync(echo, 0o755);
  const host = new PowerShellHyperVHost({ executable: echo });
  const hostile = `x'; Remove-VM * -Force; "$(whoami)" \`n`;
  const id = await host.importVm(hostile, 'D:\\restore\\new folder');
  const argv = JSON.parse(id) as string[];
  t.same(argv.slice(0, 5), ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File']);
  t.equal(argv[5], join(dir, 'import-vm.ps1'));
  t.same(argv.slice(6), ['-ConfigFile', hostile, '-VhdDestination', 'D:\\restore\\new folder'], 'the hostile name is one argv entry, unchanged');

  const missing = new PowerShellHyperVHost({ executable: join(tmp, 'no-such-powershell') });
  const err = await missing.listVms().then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err, 'SV_ERR_HYPERV_HOST'), String(err));

  const failing = join(tmp, 'fails');
  writeFileSync(failing, '#!/bin/sh\necho "Get-VM : You do not have the required permission" >&2\nexit 1\n');
  chmodSync(failing, 0o755);
  const err2 = await new PowerShellHyperVHost({ executable: failing }).listVms().then(() => undefined, (e: unknown) => e);
  t.ok(hasCode(err2, 'SV_ERR_HYPERV_SCRIPT_FAILED'), String(err2));
  t.match(String((err2 as Error).message), /required permission/u);
});
