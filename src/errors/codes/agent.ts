import type { ErrorTable } from '../spec.js';

/** Errors of the host agent: its control channel (framing, calls), pairing, TLS pinning, scope and registry. */
export const AGENT_ERRORS = {
  SV_ERR_AGENT_FRAME_TOO_LARGE: { status: 413, summary: 'An agent channel frame is larger than the limit (ws maxPayload); the sender refuses it, the receiver closes the connection.' },
  SV_ERR_AGENT_BAD_FRAME: { status: 400, summary: 'An agent channel frame is malformed: text instead of binary, a header length past the frame, a header that is not JSON or has wrong types; answered with a coded notice, the connection stays up.' },
  SV_ERR_AGENT_UNKNOWN_METHOD: { status: 400, summary: 'An agent channel call names a method the receiving side does not serve.' },
  SV_ERR_AGENT_BAD_PARAMS: { status: 400, summary: 'The params or result of an agent call have wrong types or sizes; details name the field.' },
  SV_ERR_AGENT_UNKNOWN_ID: { status: 400, summary: 'An agent channel answer or cancel names a call id that is not pending (never sent, already answered, or duplicated).' },
  SV_ERR_AGENT_OFFLINE: { status: 503, summary: 'The agent is not connected to the appliance; the call was not sent.' },
  SV_ERR_AGENT_DISCONNECTED: { status: 503, summary: 'The agent connection closed (cut, restarted, revoked, replaced) while the call was pending.' },
  SV_ERR_AGENT_PAIRING_INVALID: { status: 401, summary: 'The pairing code is unknown, already used or expired; create a new one with `shadowvault agents pair`.' },
  SV_ERR_AGENT_PAIRING_BINDING: { status: 401, summary: 'The pairing proof does not match the certificate the appliance serves: the agent saw another certificate (a man in the middle?) or a wrong code. The code is spent.' },
  SV_ERR_AGENT_CERT_MISMATCH: { status: 502, summary: 'The appliance presented a certificate other than the one the agent pinned at pairing; the agent refused to send its credential. Re-pair to accept a new certificate.' },
  SV_ERR_AGENT_INSECURE: { status: 403, summary: 'Agent pairing or connection without TLS beyond loopback is refused; serve the appliance with --tls-cert/--tls-key and use https://.' },
  SV_ERR_AGENT_REFUSED: { status: 401, summary: 'The appliance refused the agent credential (revoked, or unknown); the agent must be paired again.' },
  SV_ERR_AGENT_SCOPE: { status: 403, summary: 'An agent reported or touched something outside its own host (another agent\'s host name or VMs).' },
  SV_ERR_AGENT_NOT_FOUND: { status: 404, summary: 'No agent with that id is registered on the appliance.' },
  SV_ERR_AGENT_CREDENTIAL: { status: 500, summary: 'The agent\'s credential file in its data dir is missing, unreadable or malformed, and no pairing code was given.' },
  SV_ERR_AGENT_KEEPALIVE: { status: 504, summary: 'The agent channel peer did not answer pings in time; the connection was closed.' },
} as const satisfies ErrorTable;
