/**
 * `shadowvault hyperv-sim`: manage the VMs of the Hyper-V SIMULATION (SimulatedHyperVHost) that
 * `shadowvault agent --driver hyperv-sim --sim-root DIR` serves. A simulation for trying the Hyper-V driver
 * without Hyper-V: each VM is a folder with real VHDX disks and a guest process that writes the shared writer
 * guest's pattern (docs/HYPERVISOR.md "The simulation").
 */
import { resolve } from 'node:path';
import { SvError } from '../../errors/index.js';
import { parseCommandArgs, printJson } from '../args.js';
import type { Command } from '../command.js';

const usage = `shadowvault hyperv-sim create --sim-root DIR --name NAME [--disk-mib N]... [--config-version 9.0]
       shadowvault hyperv-sim start|stop --sim-root DIR --vm ID_OR_NAME
       shadowvault hyperv-sim list --sim-root DIR [--json]
  A SIMULATION of a Hyper-V host over files (not Hyper-V): VMs with real VHDX disks and a guest process writing
  to disk 0. Serve it with: shadowvault agent --driver hyperv-sim --sim-root DIR ...`;

export const hypervSimCommand: Command = {
  name: 'hyperv-sim',
  summary: 'VMs of the Hyper-V SIMULATION served by `agent --driver hyperv-sim` (create, start, stop, list)',
  usage,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      'sim-root': { type: 'string' },
      name: { type: 'string' },
      vm: { type: 'string' },
      'disk-mib': { type: 'string', multiple: true },
      'config-version': { type: 'string' },
      json: { type: 'boolean' },
    }, usage);
    const action = positionals[0];
    if (!values['sim-root']) throw new SvError('SV_ERR_CLI_BAD_USAGE', `hyperv-sim needs --sim-root DIR\nusage: ${usage}`, {});
    const { SimulatedHyperVHost } = await import('../../hypervisor/hyperv/simulated-host.js');
    const host = new SimulatedHyperVHost(resolve(values['sim-root']));
    const vmId = async (): Promise<string> => {
      const key = values.vm;
      if (!key) throw new SvError('SV_ERR_CLI_BAD_USAGE', `hyperv-sim ${action} needs --vm ID_OR_NAME\nusage: ${usage}`, {});
      const vm = (await host.listVms()).find((v) => v.id === key || v.name === key);
      if (!vm) throw new SvError('SV_ERR_HYPERVISOR_VM_NOT_FOUND', `simulation: no VM "${key}" under ${host.root}`, { vm: key });
      return vm.id;
    };
    switch (action) {
      case 'create': {
        if (!values.name) throw new SvError('SV_ERR_CLI_BAD_USAGE', `hyperv-sim create needs --name NAME\nusage: ${usage}`, {});
        const sizes = (values['disk-mib'] ?? ['64']).map((m) => {
          if (!/^\d+$/u.test(m) || Number(m) < 4 || Number(m) > 65536) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--disk-mib "${m}": expected 4..65536`, {});
          return Number(m) * 1024 * 1024;
        });
        const version = values['config-version'];
        if (version !== undefined && !/^\d+\.\d+$/u.test(version)) throw new SvError('SV_ERR_CLI_BAD_USAGE', `--config-version "${version}": expected MAJOR.MINOR`, {});
        const id = await host.createVm({ name: values.name, disks: sizes, ...(version ? { configurationVersion: version } : {}) });
        io.stdout.write(`${id}\n`);
        return 0;
      }
      case 'start': {
        const pid = await host.startVm(await vmId(), { detached: true });
        io.stdout.write(`guest process ${pid} (simulation)\n`);
        return 0;
      }
      case 'stop':
        await host.stopVm(await vmId());
        return 0;
      case 'list':
      case undefined: {
        const vms = await host.listVms();
        if (values.json) printJson(io, vms);
        else for (const v of vms) io.stdout.write(`${v.id}  ${v.name}  ${v.state}  ${v.disks.length} disk(s)  (simulation)\n`);
        return 0;
      }
      default:
        throw new SvError('SV_ERR_CLI_BAD_USAGE', `hyperv-sim: unknown action "${action}"\nusage: ${usage}`, {});
    }
  },
};
