/**
 * The agent channel's frame codec. One WebSocket binary message = one frame:
 *
 *   offset 0   u32 big-endian   header length H (1 ≤ H ≤ MAX_HEADER_BYTES)
 *   offset 4   H bytes          header: UTF-8 JSON object, one of the FrameHeader shapes below
 *   offset 4+H rest             payload (binary, may be empty)
 *
 * The whole frame is bounded by the WebSocket's maxPayload (the receiver closes on more:
 * SV_ERR_AGENT_FRAME_TOO_LARGE); the header by MAX_HEADER_BYTES. `decodeFrame` never trusts its input:
 * every malformed frame is an SV_ERR_AGENT_BAD_FRAME naming what was wrong, and it allocates nothing beyond
 * the frame it was given (the payload is a view into it).
 *
 * Calls go both ways (appliance → agent: AgentMethods; agent → appliance: inventory pushes); ids are chosen
 * by the caller, so a `result`/`error` names one of the receiver's own pending calls and a `cancel` names one
 * of the peer's calls that the receiver is running. `notice` answers a frame that cannot be answered by id.
 */
import { SvError, type WireError } from '../../errors/index.js';

export const MAX_HEADER_BYTES = 1 << 20;
/** Default bound of a whole frame (header + payload). */
export const DEFAULT_MAX_FRAME = 64 << 20;

export type FrameHeader =
  | { readonly t: 'call'; readonly id: number; readonly method: string; readonly params: Record<string, unknown> }
  | { readonly t: 'result'; readonly id: number; readonly result: Record<string, unknown> }
  | { readonly t: 'error'; readonly id: number; readonly error: WireError }
  | { readonly t: 'cancel'; readonly id: number }
  | { readonly t: 'notice'; readonly error: WireError };

export interface Frame {
  readonly header: FrameHeader;
  readonly payload: Uint8Array;
}

/** A frame of `header` and `payload` (given whole, or in pieces that are joined into the frame: one copy). */
export function encodeFrame(header: FrameHeader, payload?: Uint8Array | readonly Uint8Array[]): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const parts = payload === undefined ? [] : payload instanceof Uint8Array ? [payload] : payload;
  let size = 0;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafe(4 + json.length + size);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  let at = 4 + json.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bad(message: string, details: Record<string, unknown> = {}): SvError {
  return new SvError('SV_ERR_AGENT_BAD_FRAME', `bad agent frame: ${message}`, details);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

function wireError(v: unknown): WireError {
  if (!isObject(v) || typeof v.code !== 'string' || typeof v.message !== 'string' || v.code.length > 200 || (v.details !== undefined && !isObject(v.details))) {
    throw bad('error is not {code: string, message: string, details?: object}');
  }
  return { code: v.code, message: v.message, ...(v.details ? { details: v.details } : {}) };
}

/** Check a parsed header's shape; returns it typed. */
export function checkHeader(h: unknown): FrameHeader {
  if (!isObject(h)) throw bad('header is not a JSON object');
  const t = h.t;
  if (t === 'notice') return { t, error: wireError(h.error) };
  if (t !== 'call' && t !== 'result' && t !== 'error' && t !== 'cancel') throw bad(`unknown frame type ${JSON.stringify(t)?.slice(0, 40)}`);
  if (!isId(h.id)) throw bad(`frame ${t}: id must be a positive safe integer`, { t });
  switch (t) {
    case 'call':
      if (typeof h.method !== 'string' || h.method.length === 0 || h.method.length > 100) throw bad('call: method must be a short string', { id: h.id });
      if (!isObject(h.params)) throw bad('call: params must be an object', { id: h.id, method: h.method });
      return { t, id: h.id, method: h.method, params: h.params };
    case 'result':
      if (!isObject(h.result)) throw bad('result: result must be an object', { id: h.id });
      return { t, id: h.id, result: h.result };
    case 'error':
      return { t, id: h.id, error: wireError(h.error) };
    default:
      return { t, id: h.id };
  }
}

/** Decode one frame; throws SV_ERR_AGENT_BAD_FRAME on anything malformed. */
export function decodeFrame(buf: Uint8Array): Frame {
  if (buf.length < 4) throw bad(`${buf.length} bytes, shorter than the 4-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = view.getUint32(0, false);
  if (len === 0 || len > MAX_HEADER_BYTES) throw bad(`header length ${len} outside 1..${MAX_HEADER_BYTES}`, { headerLength: len });
  if (4 + len > buf.length) throw bad(`header length ${len} runs past the ${buf.length}-byte frame`, { headerLength: len, frameLength: buf.length });
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(4, 4 + len)));
  } catch (err) {
    throw bad(`header is not UTF-8 JSON: ${(err as Error).message.slice(0, 100)}`);
  }
  return { header: checkHeader(parsed), payload: buf.subarray(4 + len) };
}
