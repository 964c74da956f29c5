/**
 * The QMP wire protocol (QEMU's docs/interop/qmp-spec): what each line from the server may be, and how a
 * line is classified. Shared by the QMP client and, for replies, by the guest-agent client (qemu-ga uses
 * the same reply shapes but sends no greeting and no events).
 *
 *   greeting  {"QMP": {"version": {...}, "capabilities": [...]}}        first line after connect
 *   success   {"return": <value>, "id"?: <our id>}
 *   error     {"error": {"class": "GenericError", "desc": "..."}, "id"?: <our id>}
 *   event     {"event": "STOP", "data"?: {...}, "timestamp": {"seconds": n, "microseconds": n}}
 *
 * Anything else (not JSON, not an object, none or several of these keys) is SV_ERR_QEMU_PROTOCOL naming the
 * peer and showing the start of the offending line. Commands go out as {"execute", "arguments"?, "id"}.
 */
import { SvError } from '../errors/index.js';

export interface QmpGreeting {
  kind: 'greeting';
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}
export interface QmpSuccess {
  kind: 'return';
  id: unknown;
  value: unknown;
}
export interface QmpFailure {
  kind: 'error';
  id: unknown;
  errorClass: string;
  desc: string;
}
export interface QmpEvent {
  kind: 'event';
  event: string;
  data: Record<string, unknown>;
  /** Microseconds since the epoch, from the event's timestamp. */
  timestampUs: number;
}
export type QmpMessage = QmpGreeting | QmpSuccess | QmpFailure | QmpEvent;

const SHOWN_CHARS = 120;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(peer: string, line: string, expected: string): SvError {
  const shown = line.length > SHOWN_CHARS ? `${line.slice(0, SHOWN_CHARS)}…` : line;
  return new SvError('SV_ERR_QEMU_PROTOCOL', `${peer}: expected ${expected}, found ${JSON.stringify(shown)}`, { peer, expected, found: shown });
}

/** Classify one line from a QMP or guest-agent peer. */
export function parseQmpLine(peer: string, line: string): QmpMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw bad(peer, line, 'a JSON value');
  }
  if (!isObject(value)) throw bad(peer, line, 'a JSON object');
  const keys = ['QMP', 'return', 'error', 'event'].filter((k) => k in value);
  if (keys.length !== 1) throw bad(peer, line, 'exactly one of "QMP", "return", "error", "event"');
  if ('return' in value) return { kind: 'return', id: value.id, value: value.return };
  if ('error' in value) {
    const err = value.error;
    if (!isObject(err) || typeof err.class !== 'string' || typeof err.desc !== 'string') throw bad(peer, line, 'an error with string "class" and "desc"');
    return { kind: 'error', id: value.id, errorClass: err.class, desc: err.desc };
  }
  if ('event' in value) {
    const ts = value.timestamp;
    if (typeof value.event !== 'string' || !isObject(ts) || typeof ts.seconds !== 'number' || typeof ts.microseconds !== 'number') {
      throw bad(peer, line, 'an event with a string name and a {seconds, microseconds} timestamp');
    }
    if (value.data !== undefined && !isObject(value.data)) throw bad(peer, line, 'event data as an object');
    return { kind: 'event', event: value.event, data: value.data ?? {}, timestampUs: ts.seconds * 1e6 + ts.microseconds };
  }
  const qmp = value.QMP;
  if (!isObject(qmp) || !Array.isArray(qmp.capabilities) || !isObject(qmp.version) || !isObject(qmp.version.qemu)) {
    throw bad(peer, line, 'a greeting {"QMP": {"version": {"qemu": ...}, "capabilities": [...]}}');
  }
  const q = qmp.version.qemu;
  return {
    kind: 'greeting',
    version: { qemu: { major: Number(q.major), minor: Number(q.minor), micro: Number(q.micro) }, package: String(qmp.version.package ?? '') },
    capabilities: qmp.capabilities.map(String),
  };
}

/** The error a failed command becomes: QMP's class and description kept in details. */
export function commandFailed(peer: string, command: string, failure: QmpFailure): SvError {
  return new SvError('SV_ERR_QEMU_COMMAND_FAILED', `${peer}: ${command} failed: ${failure.errorClass}: ${failure.desc}`, {
    peer,
    command,
    errorClass: failure.errorClass,
    desc: failure.desc,
  });
}
