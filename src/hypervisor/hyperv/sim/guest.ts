/**
 * SIMULATION (SimulatedHyperVHost): the simulated guest, a node process writing to its VM's first disk through
 * the simulation's write path (disk-file.ts), with the consistency rule of ../shared/guest's writer:
 * every ~10 ms `counter += 1`, write sector LBA 2048 + (counter mod 256) full of u32le counter, then sector
 * LBA 1 full of counter (two separate writes: a copy can fall between them). Each write is logged in the
 * simulated RCT (rct-log.ts) before it is made.
 *
 *   node build/src/hypervisor/hyperv/sim/guest.js <vm folder>
 *
 * Control socket `<vm folder>/guest.sock`, one JSON line per request and per answer:
 *   {"op":"freeze","timeoutMs":n}  VSS in the guest: stop at the next tick boundary (the rule holds with
 *                                  header = newest ring value); thaws by itself after timeoutMs or when the
 *                                  connection that froze it closes.
 *   {"op":"pause"}                 Hyper-V pausing I/O for a crash-consistent checkpoint: stop after the write
 *                                  in flight; resumes by itself when the connection closes.
 *   {"op":"save"}                  save state: stop after the write in flight; stays saved until "resume".
 *   {"op":"resume"}                re-read vm.json (a checkpoint or merge may have switched the disk's file)
 *                                  and continue.
 *   {"op":"status"}                {"paused":…, "counter":…, "path":…}
 * Answers: {"ok":true,…} or {"ok":false,"error":"…"}. Prints "ready" on stdout once listening.
 */
import { createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SimVhdxFile } from './disk-file.js';
import { appendWrite } from './rct-log.js';
import { SimStore } from './store.js';

const SECTOR = 512;
const HEADER_LBA = 1;
const RING_LBA = 2048;
const RING_SLOTS = 256;
const TICK_MS = 10;

const vmDir = process.argv[2];
if (!vmDir) {
  process.stderr.write('usage: guest.js <vm folder>\n');
  process.exit(2);
}
const store = new SimStore(join(vmDir, '..'));
const vmId = vmDir.replace(/\/+$/u, '').split('/').pop()!;

let disk: SimVhdxFile;
let basePath: string;
let counter = 0;
/** null: running; else why it is paused and by whom. */
let paused: { how: 'freeze' | 'pause' | 'save'; by: Socket | null; timer?: NodeJS.Timeout } | null = null;
let wantPause: { how: 'freeze' | 'pause' | 'save'; by: Socket | null; timeoutMs?: number; done: () => void } | null = null;
let inFlight: Promise<void> = Promise.resolve();

async function openCurrent(): Promise<void> {
  const vm = store.get(vmId);
  const d = vm.disks[0]!;
  if (disk?.path === d.path) return;
  await disk?.close();
  disk = await SimVhdxFile.open(d.path);
  basePath = d.basePath;
}

function sector(value: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  for (let i = 0; i < SECTOR; i += 4) b.writeUInt32LE(value >>> 0, i);
  return b;
}

async function writeSector(lba: number, value: number): Promise<void> {
  appendWrite(basePath, lba * SECTOR, SECTOR);
  await disk.write(lba * SECTOR, sector(value));
}

/** Take a requested pause if there is one; `boundary`: between ticks (a freeze waits for one). */
function takePause(boundary: boolean): boolean {
  if (!wantPause || (wantPause.how === 'freeze' && !boundary)) return paused !== null;
  const w = wantPause;
  wantPause = null;
  paused = { how: w.how, by: w.by };
  if (w.how === 'freeze' && w.timeoutMs) paused.timer = setTimeout(() => void resume(), w.timeoutMs);
  w.done();
  return true;
}

async function loop(): Promise<void> {
  for (;;) {
    if (takePause(true)) {
      await new Promise((r) => setTimeout(r, TICK_MS));
      continue;
    }
    const c = counter + 1;
    inFlight = writeSector(RING_LBA + (c % RING_SLOTS), c);
    await inFlight;
    counter = c;
    await new Promise((r) => setImmediate(r));
    while (takePause(false)) await new Promise((r) => setTimeout(r, TICK_MS));
    inFlight = writeSector(HEADER_LBA, c);
    await inFlight;
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
}

async function resume(): Promise<void> {
  if (paused?.timer) clearTimeout(paused.timer);
  await openCurrent();
  paused = null;
}

function requestPause(how: 'freeze' | 'pause' | 'save', by: Socket, timeoutMs?: number): Promise<void> {
  if (paused) return Promise.resolve();
  return new Promise((done) => {
    wantPause = { how, by: how === 'save' ? null : by, ...(timeoutMs ? { timeoutMs } : {}), done };
  });
}

async function handle(sock: Socket, line: string): Promise<unknown> {
  const req = JSON.parse(line) as { op: string; timeoutMs?: number };
  switch (req.op) {
    case 'freeze':
    case 'pause':
    case 'save':
      await requestPause(req.op, sock, req.timeoutMs ?? 10_000);
      await inFlight;
      if (paused && req.op === 'save') paused = { how: 'save', by: null };
      return { ok: true, counter };
    case 'resume':
      await resume();
      return { ok: true, counter };
    case 'status':
      return { ok: true, paused: paused?.how ?? null, counter, path: disk.path };
    default:
      return { ok: false, error: `unknown op ${req.op}` };
  }
}

async function main(): Promise<void> {
  await openCurrent();
  // Continue the series where the disk's header left it (a restarted guest).
  counter = (await disk.read(HEADER_LBA * SECTOR, 4)).readUInt32LE(0);
  const sockPath = join(vmDir!, 'guest.sock');
  rmSync(sockPath, { force: true });
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        handle(sock, line).then(
          (a) => sock.write(`${JSON.stringify(a)}\n`),
          (err: unknown) => sock.write(`${JSON.stringify({ ok: false, error: String((err as Error).message ?? err) })}\n`),
        );
      }
    });
    // The host process that froze or paused the guest went away: thaw (VSS and the I/O pause do not outlive it).
    sock.on('close', () => {
      if (paused && paused.by === sock) void resume();
    });
    sock.on('error', () => undefined);
  });
  server.listen(sockPath, () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => process.exit(0));
  await loop();
}

main().catch((err: unknown) => {
  process.stderr.write(`simulated guest: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
