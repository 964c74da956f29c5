/**
 * The server side of the fixed newstyle handshake (option haggling), written from the NBD protocol
 * specification (doc/proto.md):
 *   greeting (FIXED_NEWSTYLE | NO_ZEROES) → client flags (unknown bits: hard disconnect) → options until
 *   NBD_OPT_GO or NBD_OPT_EXPORT_NAME enters transmission, or NBD_OPT_ABORT ends the session.
 * Options answered: EXPORT_NAME, ABORT, LIST, INFO, GO (NBD_INFO_EXPORT, _NAME, _DESCRIPTION, _BLOCK_SIZE),
 * STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT (`base:allocation`); everything else gets
 * NBD_REP_ERR_UNSUP (STARTTLS too when the server has no TLS).
 * TLS (the spec's "forced TLS" mode, the only one offered; the connection has `starttls`): before the upgrade
 * only NBD_OPT_STARTTLS (no data: NBD_REP_ACK, then `starttls` runs the TLS handshake on the same socket and
 * haggling starts afresh over TLS, with no state kept) and NBD_OPT_ABORT are served; NBD_OPT_EXPORT_NAME
 * ends the session (it cannot be refused) and every other option gets NBD_REP_ERR_TLS_REQD. STARTTLS with
 * data gets NBD_REP_ERR_INVALID, and so does STARTTLS once TLS is up. A failed TLS handshake ends the session. Malformed option data gets NBD_REP_ERR_INVALID and haggling goes on
 * (the option's length kept the stream in step). An option header with bad magic or data above
 * LIMIT.OPTION_DATA, more than `maxOptions` options, or an unknown export named by EXPORT_NAME end the
 * session (the spec allows a hard disconnect for each). Memory: one option's data (≤ 64 KiB) at a time.
 */
import { isSvError } from '../errors/index.js';
import {
  decodeClientFlags,
  decodeGoData,
  decodeMetaContextQuery,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfo,
  encodeMetaContextReply,
  encodeOptionReply,
  encodeServerReply,
  type InfoItem,
} from './codec.js';
import type { NbdExportEntry, NbdExportTable } from './backend.js';
import { CLIENT_FLAG, CONTEXT, HANDSHAKE_FLAG, INFO, LIMIT, OPT, REP, SIZE, TX_FLAG } from './protocol.js';
import type { Wire } from './wire.js';

/** The id this server gives `base:allocation` on every connection. */
export const ALLOCATION_CONTEXT_ID = 1;

export interface BlockLimits {
  minimum: number;
  preferred: number;
  maximum: number;
}

/** What the handshake agreed on, for the transmission phase. */
export interface Agreed {
  readonly entry: NbdExportEntry;
  readonly structured: boolean;
  /** `base:allocation` was selected for this export. */
  readonly allocation: boolean;
  /** The client asked for NBD_INFO_BLOCK_SIZE, so it must honour the minimum (else any alignment goes). */
  readonly strictBlocks: boolean;
  readonly blocks: BlockLimits;
}

/** Block size constraints of an export: 512-byte minimum when the size allows it, 32 MiB payloads. */
export function blockLimits(size: number): BlockLimits {
  return { minimum: size % 512 === 0 ? 512 : 1, preferred: 4096, maximum: LIMIT.PAYLOAD };
}

export function transmissionFlags(entry: NbdExportEntry, structured: boolean): number {
  let flags = TX_FLAG.HAS_FLAGS | TX_FLAG.SEND_FLUSH | TX_FLAG.SEND_FUA | TX_FLAG.CAN_MULTI_CONN;
  if (entry.backend.writable) flags |= TX_FLAG.SEND_TRIM | TX_FLAG.SEND_WRITE_ZEROES;
  else flags |= TX_FLAG.READ_ONLY;
  if (structured) flags |= TX_FLAG.SEND_DF;
  return flags;
}

/** A recoverable problem with one option: answered with `reply`, haggling continues. */
class OptionError extends Error {
  constructor(
    readonly reply: number,
    message: string,
  ) {
    super(message);
  }
}

interface State {
  structured: boolean;
  /** The export SET_META_CONTEXT named (resolved: '' is the default) and whether base:allocation was selected. */
  meta: { entry: NbdExportEntry; allocation: boolean } | null;
  noZeroes: boolean;
}

/** The connection being haggled over: `wire` is replaced by the TLS one after NBD_OPT_STARTTLS. */
export interface HandshakeConnection {
  wire: Wire;
  /** Set when the server requires TLS: upgrade the (released) plain wire; rejects when TLS fails. */
  readonly starttls?: (plain: Wire) => Promise<Wire>;
}

/**
 * Run the handshake on an accepted connection (`conn.wire` is the wire to use afterwards). Returns what was agreed, or null when the client aborted
 * (NBD_OPT_ABORT) or must be disconnected; throws only what the wire throws (peer gone, timeout, a
 * malformed option header), which the caller treats as the end of the connection.
 */
export async function serverHandshake(conn: HandshakeConnection, exports: NbdExportTable, maxOptions: number): Promise<Agreed | null> {
  let wire = conn.wire;
  let secured = conn.starttls === undefined;
  wire.write(encodeGreeting(HANDSHAKE_FLAG.FIXED_NEWSTYLE | HANDSHAKE_FLAG.NO_ZEROES));
  const clientFlags = decodeClientFlags(await wire.read(SIZE.CLIENT_FLAGS));
  if ((clientFlags & ~(CLIENT_FLAG.FIXED_NEWSTYLE | CLIENT_FLAG.NO_ZEROES)) !== 0) return null;
  let state: State = { structured: false, meta: null, noZeroes: (clientFlags & CLIENT_FLAG.NO_ZEROES) !== 0 };
  for (let count = 0; count < maxOptions; count++) {
    const header = decodeOptionHeader(await wire.read(SIZE.OPTION_HEADER));
    const data = await wire.read(header.length);
    const reply = (type: number, payload?: Buffer): void => wire.write(encodeOptionReply(header.option, type, payload));
    const refuse = (type: number, message: string): void => reply(type, Buffer.from(message, 'utf8'));
    if (!secured && conn.starttls && header.option !== OPT.ABORT) {
      if (header.option === OPT.EXPORT_NAME) return null; // cannot be refused: the spec says terminate
      if (header.option !== OPT.STARTTLS) refuse(REP.ERR_TLS_REQD, 'this server requires TLS: send NBD_OPT_STARTTLS first');
      else if (data.length !== 0) refuse(REP.ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
      else {
        await wire.writeFlushed(encodeOptionReply(header.option, REP.ACK));
        wire = conn.wire = await conn.starttls(wire);
        secured = true;
        state = { structured: false, meta: null, noZeroes: state.noZeroes };
      }
      continue;
    }
    if (header.option === OPT.STARTTLS && conn.starttls) {
      refuse(REP.ERR_INVALID, 'TLS is already negotiated on this connection');
      continue;
    }
    if (header.option === OPT.EXPORT_NAME) {
      const entry = exports.lookup(data.toString('utf8'));
      if (!entry) return null; // EXPORT_NAME cannot be refused: the spec says terminate
      wire.write(encodeExportNameReply(entry.backend.size, transmissionFlags(entry, state.structured), state.noZeroes));
      return agreed(entry, state, false);
    }
    if (header.option === OPT.ABORT) {
      reply(REP.ACK);
      return null;
    }
    try {
      const outcome = answer(header.option, data, exports, state, reply);
      if (outcome) return outcome;
    } catch (err) {
      if (err instanceof OptionError) reply(err.reply, Buffer.from(err.message.slice(0, LIMIT.STRING), 'utf8'));
      else if (isSvError(err)) reply(REP.ERR_INVALID, Buffer.from(err.message.slice(0, LIMIT.STRING), 'utf8'));
      else throw err;
    }
  }
  return null;
}

function agreed(entry: NbdExportEntry, state: State, strictBlocks: boolean): Agreed {
  const allocation = state.meta !== null && state.meta.allocation && state.meta.entry === entry;
  return { entry, structured: state.structured, allocation, strictBlocks, blocks: blockLimits(entry.backend.size) };
}

/** One option other than EXPORT_NAME / ABORT; returns the agreement when NBD_OPT_GO succeeded. */
function answer(option: number, data: Buffer, exports: NbdExportTable, state: State, reply: (type: number, payload?: Buffer) => void): Agreed | null {
  switch (option) {
    case OPT.LIST:
      if (data.length !== 0) throw new OptionError(REP.ERR_INVALID, 'NBD_OPT_LIST takes no data');
      for (const e of exports.list()) reply(REP.SERVER, encodeServerReply({ name: e.name, description: e.description }));
      reply(REP.ACK);
      return null;
    case OPT.STRUCTURED_REPLY:
      if (data.length !== 0) throw new OptionError(REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
      state.structured = true;
      reply(REP.ACK);
      return null;
    case OPT.INFO:
    case OPT.GO: {
      const go = decodeGoData(data);
      const entry = exports.lookup(go.name);
      if (!entry) throw new OptionError(REP.ERR_UNKNOWN, `no export '${go.name}'`);
      const structured = state.structured;
      const items: InfoItem[] = [{ type: 'export', size: entry.backend.size, flags: transmissionFlags(entry, structured) }];
      const asked = new Set(go.infos);
      if (asked.has(INFO.NAME)) items.push({ type: 'name', name: entry.name });
      if (asked.has(INFO.DESCRIPTION)) items.push({ type: 'description', description: entry.description });
      const blocks = blockLimits(entry.backend.size);
      if (asked.has(INFO.BLOCK_SIZE)) items.push({ type: 'block-size', ...blocks });
      for (const item of items) reply(REP.INFO, encodeInfo(item));
      reply(REP.ACK);
      return option === OPT.GO ? agreed(entry, state, asked.has(INFO.BLOCK_SIZE)) : null;
    }
    case OPT.LIST_META_CONTEXT:
    case OPT.SET_META_CONTEXT: {
      const set = option === OPT.SET_META_CONTEXT;
      if (set && !state.structured) throw new OptionError(REP.ERR_INVALID, 'NBD_OPT_SET_META_CONTEXT needs NBD_OPT_STRUCTURED_REPLY first');
      const q = decodeMetaContextQuery(data);
      const entry = exports.lookup(q.name);
      if (!entry) throw new OptionError(REP.ERR_UNKNOWN, `no export '${q.name}'`);
      // LIST with no query lists everything; `base:` lists the namespace; only exact names are selected.
      const matches = q.queries.some((query) => query === CONTEXT.BASE_ALLOCATION || (!set && query === 'base:')) || (!set && q.queries.length === 0);
      if (set) state.meta = { entry, allocation: matches };
      if (matches) reply(REP.META_CONTEXT, encodeMetaContextReply({ id: set ? ALLOCATION_CONTEXT_ID : 0, name: CONTEXT.BASE_ALLOCATION }));
      reply(REP.ACK);
      return null;
    }
    default:
      throw new OptionError(REP.ERR_UNSUP, `option ${option} is not supported by this server`);
  }
}
