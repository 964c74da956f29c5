/**
 * Guest-agent client: qemu-ga inside the VM, reached through the host end of its virtio-serial chardev
 * (a unix socket QEMU listens on; find it with `findGuestAgentSocket`, ga-lookup.ts).
 *
 * Protocol (qga/qapi-schema.json): line JSON like QMP, but no greeting, no events, one command at a time,
 * and the channel may hold stale bytes from an earlier client (a reply nobody read, half a command). So
 * before every command the client resynchronises: it sends 0xFF (resets the agent's parser) and
 * `guest-sync-delimited {id: random}`; the agent answers 0xFF + {"return": id}. Everything before that
 * 0xFF, and any line that is not our id's reply, is discarded. Then the command is sent and the next line
 * is its reply.
 *
 * Invariants: commands run strictly one after another (a queue); each has a timeout (SV_ERR_QEMU_TIMEOUT,
 * and the next command resyncs past the late reply); errors are coded like the QMP client's; lines are
 * capped. An agent that is not running never answers: callers see SV_ERR_QEMU_TIMEOUT, not a hang.
 */
import { randomInt } from 'node:crypto';
import { SvError } from '../errors/index.js';
import { RESYNC_BYTE } from './line-decoder.js';
import { LineSocket } from './line-socket.js';
import { commandFailed, parseQmpLine } from './qmp-protocol.js';

export interface GuestAgentOptions {
  connectTimeoutMs?: number;
  /** Default timeout of each command (and of each sync); `execute` may override it. */
  commandTimeoutMs?: number;
  maxLineBytes?: number;
}

const DEFAULTS = { connectTimeoutMs: 5000, commandTimeoutMs: 10_000, maxLineBytes: 1 << 20 };

export type FsfreezeStatus = 'thawed' | 'frozen';

interface Waiter {
  /** Returns true when the line was the awaited one. */
  line: (text: string) => boolean;
  fail: (err: SvError) => void;
}

export class GuestAgentClient {
  readonly #line: LineSocket;
  readonly #timeoutMs: number;
  #queue: Promise<unknown> = Promise.resolve();
  #waiter: Waiter | undefined;
  #ended: SvError | undefined;

  private constructor(line: LineSocket, timeoutMs: number) {
    this.#line = line;
    this.#timeoutMs = timeoutMs;
    line.onLine((text) => {
      if (this.#waiter?.line(text)) this.#waiter = undefined;
    });
    line.onClose((err) => {
      this.#ended = err ?? new SvError('SV_ERR_QEMU_GONE', `${line.peer}: the connection closed`, { peer: line.peer });
      this.#waiter?.fail(this.#ended);
      this.#waiter = undefined;
    });
  }

  static async connect(path: string, options: GuestAgentOptions = {}): Promise<GuestAgentClient> {
    const opts = { ...DEFAULTS, ...options };
    const line = await LineSocket.connect(path, { peer: `guest agent ${path}`, connectTimeoutMs: opts.connectTimeoutMs, maxLineBytes: opts.maxLineBytes });
    return new GuestAgentClient(line, opts.commandTimeoutMs);
  }

  /** Resync, then run one command; resolves with its "return" value. Commands queue behind each other. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const run = async (): Promise<T> => {
      const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
      await this.#sync(timeoutMs);
      const body = args === undefined ? { execute: command } : { execute: command, arguments: args };
      return (await this.#exchange(command, `${JSON.stringify(body)}\n`, timeoutMs, (text) => text)) as T;
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  ping = (opts?: { timeoutMs?: number }) => this.execute<Record<string, never>>('guest-ping', undefined, opts);
  info = () => this.execute<{ version: string; supported_commands: Array<{ name: string; enabled: boolean }> }>('guest-info');
  /** Freeze every frozen-capable file system; resolves with how many were frozen. */
  fsfreezeFreeze = (opts?: { timeoutMs?: number }) => this.execute<number>('guest-fsfreeze-freeze', undefined, opts);
  fsfreezeThaw = (opts?: { timeoutMs?: number }) => this.execute<number>('guest-fsfreeze-thaw', undefined, opts);
  fsfreezeStatus = () => this.execute<FsfreezeStatus>('guest-fsfreeze-status');

  close(): void {
    this.#line.close(new SvError('SV_ERR_QEMU_GONE', `${this.#line.peer}: the client closed the connection`, { peer: this.#line.peer }));
  }

  /** Send 0xFF + guest-sync-delimited and skip everything until its reply. */
  async #sync(timeoutMs: number): Promise<void> {
    const id = randomInt(1, 2 ** 47);
    this.#line.decoder.resync();
    const request = Buffer.concat([Buffer.from([RESYNC_BYTE]), Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`)]);
    await this.#exchange('guest-sync-delimited', request, timeoutMs, (text) => {
      try {
        const msg = parseQmpLine(this.#line.peer, text);
        return msg.kind === 'return' && msg.value === id ? text : undefined;
      } catch {
        return undefined; // a stale half line from before the resync
      }
    });
  }

  /**
   * Write `request`, then await the first line `pick` accepts (returns non-undefined) and decode it as a
   * reply. Without a pick, the first line is the reply.
   */
  #exchange(command: string, request: string | Buffer, timeoutMs: number, pick: (text: string) => string | undefined): Promise<unknown> {
    if (this.#ended) return Promise.reject(this.#ended);
    const peer = this.#line.peer;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new SvError('SV_ERR_QEMU_TIMEOUT', `${peer}: ${command} got no answer within ${timeoutMs} ms (is qemu-ga running in the guest?)`, { peer, command, timeoutMs }));
      }, timeoutMs);
      this.#waiter = {
        line: (text) => {
          const accepted = pick(text);
          if (accepted === undefined) return false;
          clearTimeout(timer);
          try {
            const msg = parseQmpLine(peer, accepted);
            if (msg.kind === 'return') resolve(msg.value);
            else if (msg.kind === 'error') reject(commandFailed(peer, command, msg));
            else reject(new SvError('SV_ERR_QEMU_PROTOCOL', `${peer}: expected the reply to ${command}, found a ${msg.kind}`, { peer, command, found: msg.kind }));
          } catch (err) {
            reject(err as SvError);
          }
          return true;
        },
        fail: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#line.write(request);
    });
  }
}
