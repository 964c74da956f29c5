/**
 * The client side of the fixed newstyle handshake, in this order:
 *   1. greeting (must offer FIXED_NEWSTYLE) → client flags (FIXED_NEWSTYLE, NO_ZEROES when offered);
 *   2. NBD_OPT_STRUCTURED_REPLY (ACK, or ERR_UNSUP: simple replies only, no block status);
 *   3. NBD_OPT_SET_META_CONTEXT with the wanted contexts, when any (each must come back selected);
 *   4. NBD_OPT_GO asking for NBD_INFO_BLOCK_SIZE (ERR_UNSUP: fall back to NBD_OPT_EXPORT_NAME).
 * Each option's replies are read until the final one (ACK or an error), at most LIMIT.OPTION_REPLIES of
 * them, each payload capped by LIMIT.OPTION_REPLY. Errors are coded; the caller closes the connection.
 */
import { SvError } from '../errors/index.js';
import {
  decodeErrorText,
  decodeExportNameReply,
  decodeGreeting,
  decodeInfo,
  decodeMetaContextReply,
  decodeOptionReplyHeader,
  encodeClientFlags,
  encodeGoData,
  encodeMetaContextQuery,
  encodeOption,
  tooLarge,
  violation,
  type OptionReplyHeader,
} from './codec.js';
import { CLIENT_FLAG, HANDSHAKE_FLAG, INFO, LIMIT, OPT, REP, REP_ERROR_BIT, SIZE, constantName } from './protocol.js';
import type { Wire } from './wire.js';

export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

export interface Negotiated {
  size: number;
  transmissionFlags: number;
  structuredReplies: boolean;
  /** Selected metadata contexts: name → the server's id for this connection. */
  contexts: Map<string, number>;
  /** The server's constraints, or the protocol defaults when it sent none. */
  blockSizes: BlockSizes;
}

/** Defaults when the server announces nothing (see "Size constraints"). */
const DEFAULT_BLOCK_SIZES: BlockSizes = { minimum: 1, preferred: 4096, maximum: LIMIT.PAYLOAD };

type ReplyHandler = (h: OptionReplyHeader, payload: Buffer) => 'more' | 'done';

/** Read the replies to `option` until `onReply` says done; error replies end it with a coded error. */
async function optionReplies(wire: Wire, option: number, onError: (h: OptionReplyHeader, text: string) => SvError | 'unsupported', onReply: ReplyHandler): Promise<'ok' | 'unsupported'> {
  for (let count = 0; count < LIMIT.OPTION_REPLIES; count++) {
    const h = decodeOptionReplyHeader(await wire.read(SIZE.OPTION_REPLY_HEADER));
    const payload = await wire.read(h.length);
    if (h.option !== option) throw violation('option reply', 'option', String(option), h.option);
    if (h.type & REP_ERROR_BIT) {
      const outcome = onError(h, decodeErrorText(payload));
      if (outcome === 'unsupported') return 'unsupported';
      throw outcome;
    }
    if (onReply(h, payload) === 'done') return 'ok';
  }
  throw tooLarge('option replies', `count for option ${option}`, LIMIT.OPTION_REPLIES, LIMIT.OPTION_REPLIES + 1);
}

function refused(option: string, h: OptionReplyHeader, text: string): SvError {
  const reply = constantName(REP, 'NBD_REP_', h.type);
  return new SvError('SV_ERR_NBD_OPTION_REFUSED', `NBD server refused ${option}: ${reply}${text ? ` (${text})` : ''}`, { option, reply, message: text });
}

function onlyAck(structure: string): ReplyHandler {
  return (h) => {
    if (h.type !== REP.ACK) throw violation(structure, 'reply type', 'NBD_REP_ACK', constantName(REP, 'NBD_REP_', h.type));
    return 'done';
  };
}

function checkBlockSizes(b: BlockSizes): BlockSizes {
  const pow2 = (v: number): boolean => v > 0 && (v & (v - 1)) === 0;
  if (!pow2(b.minimum) || b.minimum > LIMIT.MIN_BLOCK) throw violation('NBD_INFO_BLOCK_SIZE', 'minimum block size', 'a power of 2 up to 65536', b.minimum);
  if (!pow2(b.preferred) || b.preferred < b.minimum) throw violation('NBD_INFO_BLOCK_SIZE', 'preferred block size', `a power of 2 >= ${b.minimum}`, b.preferred);
  if (b.maximum < b.minimum) throw violation('NBD_INFO_BLOCK_SIZE', 'maximum payload size', `>= ${b.minimum}`, b.maximum);
  return b;
}

export async function clientHandshake(wire: Wire, exportName: string, metaContexts: readonly string[]): Promise<Negotiated> {
  const { handshakeFlags } = decodeGreeting(await wire.read(SIZE.GREETING));
  const noZeroes = (handshakeFlags & HANDSHAKE_FLAG.NO_ZEROES) !== 0;
  wire.write(encodeClientFlags(CLIENT_FLAG.FIXED_NEWSTYLE | (noZeroes ? CLIENT_FLAG.NO_ZEROES : 0)));

  wire.write(encodeOption(OPT.STRUCTURED_REPLY));
  const structured = await optionReplies(
    wire,
    OPT.STRUCTURED_REPLY,
    (h, text) => (h.type === REP.ERR_UNSUP ? 'unsupported' : refused('NBD_OPT_STRUCTURED_REPLY', h, text)),
    onlyAck('NBD_OPT_STRUCTURED_REPLY reply'),
  );
  const contexts = new Map<string, number>();
  if (metaContexts.length > 0) {
    if (structured !== 'ok') {
      throw new SvError('SV_ERR_NBD_UNSUPPORTED', `NBD server ${wire.target} has no structured replies, so no block status`, { contexts: [...metaContexts] });
    }
    await setMetaContexts(wire, exportName, metaContexts, contexts);
  }
  const info = await go(wire, exportName, noZeroes);
  return { ...info, structuredReplies: structured === 'ok', contexts };
}

async function setMetaContexts(wire: Wire, exportName: string, wanted: readonly string[], contexts: Map<string, number>): Promise<void> {
  wire.write(encodeOption(OPT.SET_META_CONTEXT, encodeMetaContextQuery({ name: exportName, queries: [...wanted] })));
  const ids = new Set<number>();
  await optionReplies(wire, OPT.SET_META_CONTEXT, (h, text) => refused('NBD_OPT_SET_META_CONTEXT', h, text), (h, payload) => {
    if (h.type === REP.ACK) return 'done';
    if (h.type !== REP.META_CONTEXT) throw violation('NBD_OPT_SET_META_CONTEXT reply', 'reply type', 'NBD_REP_META_CONTEXT or NBD_REP_ACK', h.type);
    const { id, name } = decodeMetaContextReply(payload);
    if (ids.has(id) || contexts.has(name)) throw violation('NBD_REP_META_CONTEXT', 'context', 'a new id and name', `${id} ${name}`);
    ids.add(id);
    contexts.set(name, id);
    return 'more';
  });
  const missing = wanted.filter((name) => !contexts.has(name));
  if (missing.length > 0) {
    throw new SvError('SV_ERR_NBD_NO_META_CONTEXT', `NBD server ${wire.target} did not select ${missing.join(', ')} for export '${exportName}'`, {
      missing,
      selected: [...contexts.keys()],
    });
  }
}

async function go(wire: Wire, exportName: string, noZeroes: boolean): Promise<Omit<Negotiated, 'structuredReplies' | 'contexts'>> {
  wire.write(encodeOption(OPT.GO, encodeGoData({ name: exportName, infos: [INFO.BLOCK_SIZE] })));
  const got: { exported: { size: number; flags: number } | null; blockSizes: BlockSizes } = { exported: null, blockSizes: DEFAULT_BLOCK_SIZES };
  const outcome = await optionReplies(
    wire,
    OPT.GO,
    (h, text) => {
      if (h.type === REP.ERR_UNSUP) return 'unsupported';
      if (h.type === REP.ERR_UNKNOWN) {
        return new SvError('SV_ERR_NBD_EXPORT_NOT_FOUND', `NBD server ${wire.target} has no export '${exportName}'${text ? ` (${text})` : ''}`, { exportName });
      }
      return refused('NBD_OPT_GO', h, text);
    },
    (h, payload) => {
      if (h.type === REP.ACK) {
        if (!got.exported) throw violation('NBD_OPT_GO reply', 'NBD_INFO_EXPORT', 'sent before NBD_REP_ACK', 'missing');
        return 'done';
      }
      if (h.type !== REP.INFO) throw violation('NBD_OPT_GO reply', 'reply type', 'NBD_REP_INFO or NBD_REP_ACK', h.type);
      const item = decodeInfo(payload);
      if (item.type === 'export') got.exported = { size: item.size, flags: item.flags };
      else if (item.type === 'block-size') got.blockSizes = checkBlockSizes(item);
      return 'more';
    },
  );
  if (outcome === 'unsupported') {
    wire.write(encodeOption(OPT.EXPORT_NAME, Buffer.from(exportName, 'utf8')));
    const reply = decodeExportNameReply(await wire.read(SIZE.EXPORT_NAME_REPLY));
    if (!noZeroes) await wire.read(SIZE.EXPORT_NAME_ZEROES);
    return { size: reply.size, transmissionFlags: reply.flags, blockSizes: DEFAULT_BLOCK_SIZES };
  }
  if (!got.exported) throw violation('NBD_OPT_GO reply', 'NBD_INFO_EXPORT', 'sent before NBD_REP_ACK', 'missing');
  return { size: got.exported.size, transmissionFlags: got.exported.flags, blockSizes: got.blockSizes };
}
