/**
 * Pairing codes and the channel binding that keeps a man in the middle from using one.
 *
 * A pairing code is `ID-SECRET` (8 + 32 hex digits; 128 secret bits). The appliance stores only
 * key = SHA-256("shadowvault-pairing:" + SECRET). The agent never sends the secret: it sends ID and
 *   proof = HMAC-SHA256(key, "shadowvault-pair-v1|" + F)
 * where F is the SHA-256 fingerprint of the certificate it sees on THIS connection ("none" on plain
 * loopback http). The appliance recomputes the proof with its own certificate's fingerprint; a proxy that
 * presents another certificate produces another F, so its proof fails (and the code is spent). The agent then
 * pins F: later connections present its credential only after the TLS handshake showed exactly F.
 * Whoever reads the appliance's state file can pair (the key is there): the state folder is 0700.
 */
import { X509Certificate, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SvError } from '../../errors/index.js';

/** Fingerprint of plain loopback http (no certificate). */
export const NO_TLS = 'none';

export function newPairingCode(): { id: string; secret: string; code: string } {
  const id = randomBytes(4).toString('hex');
  const secret = randomBytes(16).toString('hex');
  return { id, secret, code: `${id}-${secret}` };
}

export function parsePairingCode(code: string): { id: string; secret: string } {
  const m = /^([0-9a-f]{8})-([0-9a-f]{32})$/.exec(code.trim().toLowerCase());
  if (!m) throw new SvError('SV_ERR_AGENT_PAIRING_INVALID', 'a pairing code looks like 8 hex digits, "-", 32 hex digits (from `shadowvault agents pair`)', {});
  return { id: m[1], secret: m[2] };
}

export function pairingKey(secret: string): string {
  return createHash('sha256').update(`shadowvault-pairing:${secret}`, 'utf8').digest('hex');
}

export function pairingProof(key: string, fingerprint: string): string {
  return createHmac('sha256', Buffer.from(key, 'hex')).update(`shadowvault-pair-v1|${fingerprint}`, 'utf8').digest('hex');
}

export function proofMatches(key: string, fingerprint: string, proof: string): boolean {
  const want = Buffer.from(pairingProof(key, fingerprint), 'hex');
  const got = /^[0-9a-f]{64}$/.test(proof) ? Buffer.from(proof, 'hex') : Buffer.alloc(32);
  return timingSafeEqual(want, got) && proof.length === 64;
}

/** SHA-256 fingerprint of a certificate (PEM text or DER bytes), lowercase hex without colons. */
export function certFingerprint(cert: string | Buffer): string {
  const x = new X509Certificate(cert);
  return x.fingerprint256.replaceAll(':', '').toLowerCase();
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}
