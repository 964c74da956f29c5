/**
 * The agent's side of the transport: open a connection to the appliance, check the certificate BEFORE any
 * secret goes out, then speak HTTP (pairing) or WebSocket (the control channel) over that very socket.
 *
 * - https: TLS handshake first (the certificate is self-signed as often as not: trust comes from the pin, not
 *   from a CA), fingerprint of the certificate seen; with a pin, a different one → SV_ERR_AGENT_CERT_MISMATCH
 *   and the socket is closed before a byte of HTTP is sent.
 * - http: loopback only (SV_ERR_AGENT_INSECURE otherwise); fingerprint NO_TLS.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { SvError, fromWire, hasCode, type WireError } from '../../errors/index.js';
import { NO_TLS, certFingerprint, isLoopbackHost } from './binding.js';
import { DEFAULT_MAX_FRAME } from './frame.js';

export interface Transport {
  readonly socket: Socket;
  readonly fingerprint: string;
  readonly secure: boolean;
}

function target(url: URL): { host: string; port: number; secure: boolean } {
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') throw new SvError('SV_ERR_CLI_BAD_USAGE', `--appliance ${url.href}: expected http(s)://HOST:PORT`, { url: url.href });
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { host, port: Number(url.port || (secure ? 443 : 80)), secure };
}

function connectError(url: URL, err: unknown): SvError {
  if (err instanceof SvError) return err;
  const e = err as NodeJS.ErrnoException;
  return new SvError('SV_ERR_AGENT_DISCONNECTED', `cannot reach the appliance at ${url.origin}: ${e.code ?? ''} ${e.message}`.trim(), { url: url.origin, errno: e.code ?? null }, { cause: err });
}

/** Connect; `pin` (a fingerprint) must match on https when given. */
export async function openTransport(url: URL, pin: string | undefined, timeoutMs = 10_000): Promise<Transport> {
  const { host, port, secure } = target(url);
  if (!secure && !isLoopbackHost(host)) {
    throw new SvError('SV_ERR_AGENT_INSECURE', `refusing plain http to ${url.origin}: beyond loopback the agent talks to the appliance over https only`, { url: url.origin });
  }
  if (!secure && pin !== undefined && pin !== NO_TLS) {
    throw new SvError('SV_ERR_AGENT_CERT_MISMATCH', `the agent was paired over TLS (certificate ${pin.slice(0, 16)}…) and refuses plain http to ${url.origin}`, { url: url.origin, pinned: pin });
  }
  const socket: Socket = secure
    ? tlsConnect({ host, port, rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }) })
    : netConnect({ host, port });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SvError('SV_ERR_AGENT_DISCONNECTED', `connecting to ${url.origin} took over ${timeoutMs} ms`, { url: url.origin })), timeoutMs);
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    socket.destroy();
    throw connectError(url, err);
  }
  let fingerprint = NO_TLS;
  if (secure) {
    const raw = (socket as TLSSocket).getPeerCertificate(false)?.raw;
    fingerprint = raw ? certFingerprint(raw) : '';
    if (pin !== undefined && fingerprint !== pin) {
      socket.destroy();
      throw new SvError('SV_ERR_AGENT_CERT_MISMATCH', `the appliance at ${url.origin} presented certificate ${fingerprint.slice(0, 16)}…, not the one pinned at pairing (${pin.slice(0, 16)}…); the credential was not sent`, { url: url.origin, seen: fingerprint, pinned: pin });
    }
  }
  return { socket, fingerprint, secure };
}

/** POST a JSON body over an opened transport; resolves the JSON answer or throws its coded error. */
export function postJson<T>(url: URL, t: Transport, path: string, body: unknown): Promise<T> {
  const text = JSON.stringify(body);
  const request = t.secure ? httpsRequest : httpRequest;
  return new Promise<T>((resolve, reject) => {
    const req = request(new URL(path, url), { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, createConnection: () => t.socket }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(connectError(url, err)));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new SvError('SV_ERR_API_REMOTE', `the appliance at ${url.origin} answered ${res.statusCode} with non-JSON`, { status: res.statusCode ?? 0 }));
          return;
        }
        if ((res.statusCode ?? 500) >= 400) {
          const w = json as WireError;
          reject(typeof w?.code === 'string' ? fromWire(w) : new SvError('SV_ERR_API_REMOTE', `the appliance answered ${res.statusCode}`, { status: res.statusCode ?? 0 }));
        } else resolve(json as T);
      });
    });
    req.on('error', (err) => reject(connectError(url, err)));
    req.end(text);
  });
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Open the control channel WebSocket over an opened transport, authenticated by the agent credential. */
export function openChannel(url: URL, t: Transport, credential: string, maxFrame = DEFAULT_MAX_FRAME): Promise<WebSocket> {
  const wsUrl = new URL('/api/v1/agents/connect', url);
  wsUrl.protocol = t.secure ? 'wss:' : 'ws:';
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(wsUrl, {
      headers: { authorization: `Bearer ${credential}` },
      createConnection: () => t.socket,
      maxPayload: maxFrame,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      // A zero masking key: RFC 6455 masks client frames so that a script in a browser cannot make a
      // proxy cache poison its bytes; this client is no browser, and the channel is TLS off loopback. With
      // a zero key ws sends the payload as it is instead of a masked copy of each (up to 16 MiB) frame, and
      // the appliance skips unmasking: one copy and two passes less per view.range answer.
      generateMask: zeroMask,
    });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.removeAllListeners('unexpected-response');
      resolve(ws);
    });
    ws.once('error', (err) => reject(connectError(url, err)));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let w: WireError | undefined;
        try {
          w = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WireError;
        } catch {
          /* not JSON */
        }
        t.socket.destroy();
        if (w && typeof w.code === 'string') {
          const e = fromWire(w);
          // a credential the appliance does not know (revoked or forgotten) means: pair again
          reject(hasCode(e, 'SV_ERR_API_UNAUTHENTICATED') ? new SvError('SV_ERR_AGENT_REFUSED', `the appliance refused the agent credential: ${e.message}; pair again with --pair CODE`, { status: res.statusCode ?? 0 }, { cause: e }) : e);
        } else reject(new SvError('SV_ERR_AGENT_DISCONNECTED', `the appliance answered the channel upgrade with ${res.statusCode}`, { status: res.statusCode ?? 0 }));
      });
    });
  });
}
