/**
 * A scriptable NBD server for the hostile-peer tests, built on the codec's server-side encoders and
 * client-side decoders (so it also exercises the directions issue 12's server will use). By default it
 * behaves: fixed newstyle, structured replies, every queried meta context selected (ids 1, 2, ...), GO
 * with a 1 MiB read-only export, READ answered with one OFFSET_DATA chunk of a byte pattern, BLOCK_STATUS
 * with one allocated extent per context. A script overrides any step; `send` passes every outgoing
 * message through `script.mutate` (the fuzz test's hook).
 */
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  decodeClientFlags,
  decodeMetaContextQuery,
  decodeOptionHeader,
  decodeRequest,
  encodeBlockStatus,
  encodeChunk,
  encodeGreeting,
  encodeInfo,
  encodeMetaContextReply,
  encodeOffsetData,
  encodeOptionReply,
  type OptionHeader,
  type Request,
} from '../../src/nbd/codec.js';
import { CMD, HANDSHAKE_FLAG, OPT, REP, REPLY_FLAG, REPLY_TYPE, SIZE, TX_FLAG } from '../../src/nbd/protocol.js';

export const EXPORT_SIZE = 1 << 20;

export class Session {
  readonly socket: Socket;
  readonly script: Script;
  contexts: string[] = [];

  constructor(socket: Socket, script: Script) {
    this.socket = socket;
    this.script = script;
  }

  send(buf: Buffer): void {
    const out = this.script.mutate ? this.script.mutate(buf) : buf;
    if (out === 'close') this.socket.destroy();
    else if (out !== 'stall' && !this.socket.destroyed) this.socket.write(out);
  }

  /** The normal answer to an option (used by scripts that change only some options). */
  defaultOption(h: OptionHeader, data: Buffer): 'transmission' | void {
    if (h.option === OPT.STRUCTURED_REPLY) this.send(encodeOptionReply(h.option, REP.ACK));
    else if (h.option === OPT.SET_META_CONTEXT) {
      this.contexts = decodeMetaContextQuery(data).queries;
      this.contexts.forEach((name, i) => this.send(encodeOptionReply(h.option, REP.META_CONTEXT, encodeMetaContextReply({ id: i + 1, name }))));
      this.send(encodeOptionReply(h.option, REP.ACK));
    } else if (h.option === OPT.GO) {
      this.send(encodeOptionReply(h.option, REP.INFO, encodeInfo({ type: 'export', size: EXPORT_SIZE, flags: TX_FLAG.HAS_FLAGS | TX_FLAG.READ_ONLY })));
      this.send(encodeOptionReply(h.option, REP.INFO, encodeInfo({ type: 'block-size', minimum: 1, preferred: 4096, maximum: 1 << 25 })));
      this.send(encodeOptionReply(h.option, REP.ACK));
      return 'transmission';
    } else if (h.option === OPT.ABORT) {
      this.send(encodeOptionReply(h.option, REP.ACK));
      this.socket.end();
    } else this.send(encodeOptionReply(h.option, REP.ERR_UNSUP));
  }

  /** The normal answer to a request. */
  defaultRequest(r: Request): void {
    if (r.type === CMD.DISC) this.socket.end();
    else if (r.type === CMD.READ) {
      const data = Buffer.alloc(r.length, (r.offset & 0xff) | 1);
      this.send(encodeChunk(REPLY_FLAG.DONE, REPLY_TYPE.OFFSET_DATA, r.cookie, encodeOffsetData(r.offset, data)));
    } else if (r.type === CMD.BLOCK_STATUS) {
      this.contexts.forEach((_, i) => {
        const last = i === this.contexts.length - 1;
        this.send(encodeChunk(last ? REPLY_FLAG.DONE : 0, REPLY_TYPE.BLOCK_STATUS, r.cookie, encodeBlockStatus(i + 1, [{ length: r.length, flags: 0 }])));
      });
    }
  }
}

export interface Script {
  greeting?: (s: Session) => void;
  option?: (s: Session, h: OptionHeader, data: Buffer) => 'transmission' | void;
  request?: (s: Session, r: Request) => void;
  mutate?: (buf: Buffer) => Buffer | 'stall' | 'close';
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** Parse what the client sends and hand each message to the script (or the defaults). */
function serve(socket: Socket, script: Script): void {
  const s = new Session(socket, script);
  let pending = Buffer.alloc(0);
  let phase: 'flags' | 'options' | 'transmission' = 'flags';
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    for (;;) {
      if (phase === 'flags') {
        if (pending.length < SIZE.CLIENT_FLAGS) return;
        decodeClientFlags(pending.subarray(0, SIZE.CLIENT_FLAGS));
        pending = pending.subarray(SIZE.CLIENT_FLAGS);
        phase = 'options';
      } else if (phase === 'options') {
        if (pending.length < SIZE.OPTION_HEADER) return;
        const h = decodeOptionHeader(pending.subarray(0, SIZE.OPTION_HEADER));
        if (pending.length < SIZE.OPTION_HEADER + h.length) return;
        const data = pending.subarray(SIZE.OPTION_HEADER, SIZE.OPTION_HEADER + h.length);
        pending = pending.subarray(SIZE.OPTION_HEADER + h.length);
        const next = script.option ? script.option(s, h, data) : s.defaultOption(h, data);
        if (next === 'transmission') phase = 'transmission';
      } else {
        if (pending.length < SIZE.REQUEST) return;
        const r = decodeRequest(pending.subarray(0, SIZE.REQUEST));
        pending = pending.subarray(SIZE.REQUEST);
        if (script.request) script.request(s, r);
        else s.defaultRequest(r);
      }
    }
  });
  if (script.greeting) script.greeting(s);
  else s.send(encodeGreeting(HANDSHAKE_FLAG.FIXED_NEWSTYLE | HANDSHAKE_FLAG.NO_ZEROES));
}

/** Start a scripted server on a unix socket in `dir`; closed (with its connections) in teardown. */
export async function hostileServer(t: Teardown, dir: string, script: Script, name = 'hostile.sock'): Promise<string> {
  const path = join(dir, name);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serve(socket, script);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return path;
}
