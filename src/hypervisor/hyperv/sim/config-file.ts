/**
 * The Hyper-V SIMULATION's configuration file, `<vm id>.sim-vmcx.json` (not a real .vmcx: labelled so in its
 * `simulation` field): written by SimulatedHyperVHost.exportConfiguration, read back by its importVm. Import
 * reads a file that came back from a backup store, so it is parsed as hostile input: exactly these fields,
 * a name of at most 256 characters, generation 1 or 2, a version "N.N", 1..64 disks each naming ONE file
 * (config.ts checkConfigName: no path traversal) at a controller location 0..63 with a size that is a multiple
 * of 1 MiB up to 64 TiB, the file at most 64 KiB. Anything else: SV_ERR_HYPERVISOR_BAD_CONFIGURATION.
 */
import { SvError } from '../../../errors/index.js';
import { checkConfigName } from '../../config.js';

export const SIM_CONFIG_SUFFIX = '.sim-vmcx.json';
export const SIM_CONFIG_LABEL = 'hyperv-sim: a simulated VM configuration, not a Hyper-V .vmcx';
const MAX_BYTES = 64 * 1024;

export interface SimConfigDisk {
  readonly controllerType: 'SCSI' | 'IDE';
  readonly controllerNumber: number;
  readonly controllerLocation: number;
  /** The disk's file name (one path component), looked for in the import folder. */
  readonly file: string;
  readonly virtualSize: number;
}

export interface SimConfig {
  readonly simulation: typeof SIM_CONFIG_LABEL;
  readonly id: string;
  readonly name: string;
  readonly generation: 1 | 2;
  readonly configurationVersion: string;
  readonly disks: readonly SimConfigDisk[];
}

export function encodeSimConfig(c: SimConfig): string {
  return `${JSON.stringify(c, null, 2)}\n`;
}

function bad(path: string, what: string): SvError {
  return new SvError('SV_ERR_HYPERVISOR_BAD_CONFIGURATION', `simulated configuration ${path}: ${what}`, { path });
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;

/** Parse and check a `.sim-vmcx.json` (see the header). */
export function parseSimConfig(text: string, path: string): SimConfig {
  if (text.length > MAX_BYTES) throw bad(path, `${text.length} characters, at most ${MAX_BYTES}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(path, `not JSON (${(err as Error).message.slice(0, 100)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(path, 'not a JSON object');
  const o = raw as Record<string, unknown>;
  const keys = ['simulation', 'id', 'name', 'generation', 'configurationVersion', 'disks'];
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(path, `unknown field ${JSON.stringify(k.slice(0, 40))}`);
  if (o.simulation !== SIM_CONFIG_LABEL) throw bad(path, 'the simulation label is missing (only the simulation\'s own files are imported)');
  if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 64) throw bad(path, 'id must be a string of 1..64 characters');
  if (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 256 || o.name.includes('\0')) throw bad(path, 'name must be a string of 1..256 characters');
  if (o.generation !== 1 && o.generation !== 2) throw bad(path, `generation ${JSON.stringify(o.generation)?.slice(0, 20)} is not 1 or 2`);
  if (typeof o.configurationVersion !== 'string' || !/^\d{1,3}\.\d{1,3}$/u.test(o.configurationVersion)) throw bad(path, 'configurationVersion must look like "9.0"');
  if (!Array.isArray(o.disks) || o.disks.length === 0 || o.disks.length > 64) throw bad(path, 'disks must be a list of 1..64 disks');
  const disks = o.disks.map((d: unknown, i: number): SimConfigDisk => {
    if (typeof d !== 'object' || d === null || Array.isArray(d)) throw bad(path, `disks[${i}] is not an object`);
    const r = d as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!['controllerType', 'controllerNumber', 'controllerLocation', 'file', 'virtualSize'].includes(k)) throw bad(path, `disks[${i}]: unknown field ${JSON.stringify(k.slice(0, 40))}`);
    if (r.controllerType !== 'SCSI' && r.controllerType !== 'IDE') throw bad(path, `disks[${i}].controllerType is not SCSI or IDE`);
    if (!isInt(r.controllerNumber, 0, 3) || !isInt(r.controllerLocation, 0, 63)) throw bad(path, `disks[${i}]: controller number 0..3 and location 0..63 expected`);
    if (!isInt(r.virtualSize, 1024 * 1024, 64 * 2 ** 40) || r.virtualSize % (1024 * 1024) !== 0) throw bad(path, `disks[${i}].virtualSize must be a multiple of 1 MiB up to 64 TiB`);
    return { controllerType: r.controllerType, controllerNumber: r.controllerNumber, controllerLocation: r.controllerLocation, file: checkConfigName(r.file, `${path} disks[${i}].file`), virtualSize: r.virtualSize };
  });
  if (new Set(disks.map((d) => d.file.toLowerCase())).size !== disks.length) throw bad(path, 'two disks name the same file');
  return { simulation: SIM_CONFIG_LABEL, id: o.id, name: o.name, generation: o.generation, configurationVersion: o.configurationVersion, disks };
}
