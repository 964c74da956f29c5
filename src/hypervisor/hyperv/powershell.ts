/**
 * `PowerShellHyperVHost`: the host layer (host.ts) on a real Hyper-V host, one PowerShell script per method.
 *
 * How a call runs: `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File <script> -Name value
 * ...` (spawned without a shell). Values travel as separate argv entries bound to the script's typed `param()`
 * block; no value is ever pasted into script text, so a VM named `'; Remove-VM *` is only a string. The scripts
 * live in hyperv-scripts/ at the package root (plain files, not compiled; resolved from this module's URL in
 * build/ and in src/ alike). Each prints one JSON envelope (records.ts) which is parsed and validated here.
 *
 * NOT RUN AGAINST A REAL HYPER-V HOST by this project's tests: the scripts are parsed with a PowerShell grammar
 * and the output parsers run against outputs written from the documented CIM classes (test/hypervisor/
 * hyperv-scripts.test.ts); the driver logic runs against SimulatedHyperVHost. README "Hyper-V" lists what an
 * administrator runs to try it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { SvError } from '../../errors/index.js';
import type {
  CheckpointRequest, HvCheckpoint, HvDiskChanges, HvReferencePoint, HvVm, HyperVHost,
} from './host.js';
import {
  parseBoolean, parseCheckpoint, parseCheckpoints, parseDiskChanges, parseEnvelope, parseReferencePoint, parseReferencePoints,
  parseString, parseStrings, parseVms,
} from './records.js';

/** Script file → the parameters the TS side passes (test/hypervisor/hyperv-scripts.test.ts checks each script declares them). */
export const SCRIPT_PARAMS = {
  'vm-inventory.ps1': [],
  'checkpoints.ps1': ['VmId'],
  'reference-points.ps1': ['VmId'],
  'create-checkpoint.ps1': ['VmId', 'Name', 'ConsistencyLevel', 'IgnoreNonSnapshottableDisks'],
  'convert-reference-point.ps1': ['CheckpointId'],
  'remove-checkpoint.ps1': ['CheckpointId'],
  'destroy-reference-point.ps1': ['ReferencePointId'],
  'disk-changes.ps1': ['Path', 'LimitId', 'Offset', 'Length'],
  'vm-state.ps1': ['VmId', 'Action'],
  'merge-setting.ps1': ['VmId', 'Enabled'],
  'export-config.ps1': ['VmId', 'CheckpointId', 'Destination'],
  'import-vm.ps1': ['ConfigFile', 'VhdDestination'],
} as const satisfies Record<string, readonly string[]>;
export type ScriptName = keyof typeof SCRIPT_PARAMS;

/** hyperv-scripts/ at the package root (this file is src/hypervisor/hyperv/ or build/src/hypervisor/hyperv/). */
export function scriptsDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const up of ['../../..', '../../../..']) {
    const dir = join(here, up, 'hyperv-scripts');
    if (existsSync(join(dir, 'vm-inventory.ps1'))) return dir;
  }
  return join(here, '../../../..', 'hyperv-scripts');
}

export interface PowerShellOptions {
  /** The PowerShell executable (default `powershell.exe`, Windows PowerShell 5.1 as on Windows Server 2016+). */
  readonly executable?: string;
  /** Longest one script may run (default 10 minutes: a checkpoint of a large VM, a merge). */
  readonly timeoutMs?: number;
}

/** The argv of one script call: the fixed switches, the script, then `-Name value` per parameter. */
export function scriptArgs(script: string, params: Readonly<Record<string, string | number | boolean>>): string[] {
  const args = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', script];
  for (const [k, v] of Object.entries(params)) args.push(`-${k}`, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  return args;
}

export class PowerShellHyperVHost implements HyperVHost {
  readonly description = 'hyperv (PowerShell/CIM, root\\virtualization\\v2)';
  readonly #exe: string;
  readonly #timeoutMs: number;
  readonly #dir: string;

  constructor(opts: PowerShellOptions = {}) {
    this.#exe = opts.executable ?? 'powershell.exe';
    this.#timeoutMs = opts.timeoutMs ?? 600_000;
    this.#dir = scriptsDir();
  }

  /** Run one script; its envelope's data (or its coded failure). */
  async run(name: ScriptName, params: Readonly<Record<string, string | number | boolean>> = {}): Promise<unknown> {
    const declared: readonly string[] = SCRIPT_PARAMS[name];
    for (const k of Object.keys(params)) if (!declared.includes(k)) throw new SvError('SV_ERR_CORE_INTERNAL', `${name}: parameter ${k} is not declared`, { script: name });
    const script = join(this.#dir, name);
    if (!existsSync(script)) throw new SvError('SV_ERR_HYPERV_HOST', `${script} is missing (the hyperv-scripts folder of the install)`, { script });
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(this.#exe, scriptArgs(script, params), { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
      // Our own bound (spawn's `timeout` leaves its timer behind when the executable does not exist).
      const timer = setTimeout(() => child.kill(), this.#timeoutMs);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new SvError('SV_ERR_HYPERV_HOST', `cannot run ${this.#exe}: ${e.message} (the Hyper-V driver runs on a Windows host with the Hyper-V PowerShell module)`, { executable: this.#exe }, { cause: e }));
      });
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve({ code: c, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
    const text = stdout.trim();
    // A script that failed in a known way still prints its failure envelope (exit 1): that one wins.
    if (text.startsWith('{')) return parseEnvelope(name, text);
    throw new SvError('SV_ERR_HYPERV_SCRIPT_FAILED', `${name} exited ${code ?? 'on a signal'} without a result: ${stderr.trim().slice(0, 2000) || '(no error output)'}`, { script: name, exitCode: code, stderr: stderr.slice(0, 4000) });
  }

  async listVms(): Promise<HvVm[]> {
    return parseVms('vm-inventory.ps1', await this.run('vm-inventory.ps1'));
  }

  async listCheckpoints(vmId: string): Promise<HvCheckpoint[]> {
    return parseCheckpoints('checkpoints.ps1', await this.run('checkpoints.ps1', { VmId: vmId }));
  }

  async listReferencePoints(vmId: string): Promise<HvReferencePoint[]> {
    return parseReferencePoints('reference-points.ps1', await this.run('reference-points.ps1', { VmId: vmId }));
  }

  async createRecoveryCheckpoint(vmId: string, req: CheckpointRequest): Promise<HvCheckpoint> {
    return parseCheckpoint('create-checkpoint.ps1', await this.run('create-checkpoint.ps1', {
      VmId: vmId, Name: req.name, ConsistencyLevel: req.consistencyLevel, IgnoreNonSnapshottableDisks: req.ignoreNonSnapshottableDisks,
    }));
  }

  async convertToReferencePoint(checkpointId: string): Promise<HvReferencePoint> {
    return parseReferencePoint('convert-reference-point.ps1', await this.run('convert-reference-point.ps1', { CheckpointId: checkpointId }));
  }

  async removeCheckpoint(checkpointId: string): Promise<void> {
    await this.run('remove-checkpoint.ps1', { CheckpointId: checkpointId });
  }

  async destroyReferencePoint(referencePointId: string): Promise<void> {
    await this.run('destroy-reference-point.ps1', { ReferencePointId: referencePointId });
  }

  async getVirtualDiskChanges(path: string, limitId: string, offset: number, length: number): Promise<HvDiskChanges> {
    return parseDiskChanges('disk-changes.ps1', await this.run('disk-changes.ps1', { Path: path, LimitId: limitId, Offset: offset, Length: length }), offset, length);
  }

  async saveVm(vmId: string): Promise<void> {
    await this.run('vm-state.ps1', { VmId: vmId, Action: 'Save' });
  }

  async resumeVm(vmId: string): Promise<void> {
    await this.run('vm-state.ps1', { VmId: vmId, Action: 'Start' });
  }

  async getMergeEnabled(vmId: string): Promise<boolean> {
    return parseBoolean('merge-setting.ps1', await this.run('merge-setting.ps1', { VmId: vmId }));
  }

  async setMergeEnabled(vmId: string, enabled: boolean): Promise<void> {
    await this.run('merge-setting.ps1', { VmId: vmId, Enabled: enabled ? 'true' : 'false' });
  }

  async exportConfiguration(vmId: string, checkpointId: string, destDir: string): Promise<string[]> {
    return parseStrings('export-config.ps1', await this.run('export-config.ps1', { VmId: vmId, CheckpointId: checkpointId, Destination: destDir }));
  }

  async importVm(configFile: string, vhdDestination: string): Promise<string> {
    return parseString('import-vm.ps1', await this.run('import-vm.ps1', { ConfigFile: configFile, VhdDestination: vhdDestination }));
  }
}
