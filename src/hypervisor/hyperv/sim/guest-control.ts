/**
 * SIMULATION: the host side of the simulated guest's control socket (protocol in guest.ts), and starting the
 * guest process. A freeze or pause lasts while the connection that asked for it is open: a host process
 * killed mid-checkpoint thaws the guest by dying, as VSS and Hyper-V's I/O pause do not outlive their caller.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SvError } from '../../../errors/index.js';

export interface GuestAnswer {
  readonly ok: boolean;
  readonly error?: string;
  readonly counter?: number;
  readonly paused?: string | null;
  readonly path?: string;
}

export class GuestControl {
  readonly #sock: Socket;
  #buf = '';
  #waiting: Array<(line: string) => void> = [];

  private constructor(sock: Socket) {
    this.#sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.#buf += chunk;
      for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
        const line = this.#buf.slice(0, i);
        this.#buf = this.#buf.slice(i + 1);
        this.#waiting.shift()?.(line);
      }
    });
  }

  static async connect(vmDir: string): Promise<GuestControl> {
    const path = join(vmDir, 'guest.sock');
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path, () => resolve(s));
      s.once('error', (err) => reject(new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest does not answer on ${path}: ${err.message}`, { path }, { cause: err })));
    });
    sock.on('error', () => undefined);
    return new GuestControl(sock);
  }

  async call(op: 'freeze' | 'pause' | 'save' | 'resume' | 'status', extra: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<GuestAnswer> {
    const answer = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest did not answer "${op}" within ${timeoutMs} ms`, { op })), timeoutMs);
      this.#waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
      this.#sock.once('close', () => reject(new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest closed its socket during "${op}"`, { op })));
      this.#sock.write(`${JSON.stringify({ op, ...extra })}\n`);
    });
    const a = JSON.parse(answer) as GuestAnswer;
    if (!a.ok) throw new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest refused "${op}": ${a.error ?? '?'}`, { op });
    return a;
  }

  close(): void {
    this.#sock.destroy();
  }
}

/** One request on a connection of its own (closed after: nothing it asked outlives it but a save). */
export async function guestCall(vmDir: string, op: 'save' | 'resume' | 'status'): Promise<GuestAnswer> {
  const c = await GuestControl.connect(vmDir);
  try {
    return await c.call(op);
  } finally {
    c.close();
  }
}

/**
 * Start the simulated guest of the VM in `vmDir`; resolves once it listens. `detached`: the guest outlives this
 * process (the CLI's `hyperv-sim start`), its output going to `<vmDir>/guest.log`.
 */
export async function spawnGuest(vmDir: string, opts: { detached?: boolean } = {}): Promise<ChildProcess> {
  const script = fileURLToPath(new URL('./guest.js', import.meta.url));
  if (opts.detached) {
    const log = openSync(join(vmDir, 'guest.log'), 'a');
    const child = spawn(process.execPath, [script, vmDir], { stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    child.unref();
    for (const deadline = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 100))) {
      if (child.exitCode !== null) throw new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest exited (${child.exitCode}) before it listened (see ${join(vmDir, 'guest.log')})`, { vmDir });
      if (await guestCall(vmDir, 'status').then(() => true, () => false)) return child;
      if (Date.now() > deadline) throw new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest did not listen within 30 s (see ${join(vmDir, 'guest.log')})`, { vmDir });
    }
  }
  const child = spawn(process.execPath, [script, vmDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new SvError('SV_ERR_HYPERV_HOST', `simulation: the simulated guest exited (${code}) before it listened: ${err.trim()}`, { vmDir })));
  });
  child.stdout!.resume();
  return child;
}
