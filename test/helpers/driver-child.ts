/**
 * A QEMU driver in its own process, for the kill -9 tests: views in a loop, printing each stage, until the
 * parent kills it. Usage: node driver-child.js STATE_DIR QMP_GLOB VM_ID MODE ROUNDS [CHECKPOINT_DIR]
 * Prints READY, then per round: VIEW <consistency>, READ, COMMIT | ABORT, RELEASED. With CHECKPOINT_DIR (a
 * share's folder), the VM's views are checkpoints: the view's disk is the frozen base file, read directly.
 */
import { QemuDriver } from '../../src/hypervisor/qemu/driver.js';
import { NbdClient } from '../../src/nbd/client.js';
import { openSync, readSync, closeSync } from 'node:fs';

const [stateDir, glob, vmId, mode, rounds, checkpointDir] = process.argv.slice(2);
if (!stateDir || !glob || !vmId || !mode || !rounds) throw new Error('usage: driver-child.js STATE_DIR QMP_GLOB VM_ID MODE ROUNDS');
const say = (line: string): void => void process.stdout.write(`${line}\n`);

const driver = new QemuDriver({ qmp: [glob], stateDir, ...(checkpointDir ? { checkpointIn: [checkpointDir] } : {}) });
say('READY');
for (let i = 0; i < Number(rounds); i++) {
  const view = await driver.createView(vmId, { mode: mode as 'auto' | 'online' | 'offline' });
  say(`VIEW ${view.consistency}`);
  const source = view.disks[0]!.source;
  if (source.kind === 'nbd') {
    const client = await NbdClient.connect({ target: { path: source.socket }, exportName: source.exportName });
    await client.read(0, 1 << 20);
    await client.close();
  } else if (source.kind === 'file') {
    const fd = openSync(source.path, 'r');
    readSync(fd, Buffer.alloc(1 << 20), 0, 1 << 20, 0);
    closeSync(fd);
  }
  say('READ');
  if (i % 2 === 0) {
    await view.commit();
    say('COMMIT');
  } else {
    await view.abort();
    say('ABORT');
  }
  await view.release();
  say('RELEASED');
}
await driver.close();
