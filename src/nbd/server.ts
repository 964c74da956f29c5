/**
 * An NBD server (fixed newstyle, structured replies, `base:allocation`) over a table of exports, on TCP
 * (loopback unless told otherwise) or a unix socket. The handshake is server-handshake.ts, each
 * connection's transmission phase server-session.ts; both share the codec with the client (codec.ts).
 *
 * Limits (hostile clients): at most `maxConnections` connections (more are closed at once); a handshake
 * must finish within `handshakeTimeoutMs` and `maxOptions` options; each connection has its own in-flight
 * byte budget, so memory is at most maxConnections × (connectionBudgetBytes + a few MiB of socket
 * buffers), and one client stalling cannot stall the others. Nothing a client sends is allocated before
 * its length passed a cap (codec and session).
 *
 * TLS (`tls`: certificate and key, PEM): forced TLS, the only mode offered. Every client must send
 * NBD_OPT_STARTTLS first (server-handshake.ts); the TLS handshake then runs on the same socket
 * (`TLSSocket` over it, within the handshake timeout) and option haggling goes on over TLS. A failed TLS
 * handshake (garbage instead of a ClientHello, an untrusted certificate) closes that connection only.
 *
 * `close()` stops listening, ends every connection (requests in flight are answered first when the
 * client is still reading) and resolves when all are gone; the caller then closes the backends.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { SvError, isSvError } from '../errors/index.js';
import type { NbdExportTable } from './backend.js';
import { serverHandshake, type HandshakeConnection } from './server-handshake.js';
import { Session } from './server-session.js';
import { Wire, describeTarget, type Target } from './wire.js';

export interface NbdServerOptions {
  /** Unix socket path, or host + port (port 0: any free port; host defaults to 127.0.0.1). */
  readonly listen: { path: string } | { host?: string; port: number };
  readonly exports: NbdExportTable;
  readonly maxConnections?: number;
  readonly handshakeTimeoutMs?: number;
  readonly maxOptions?: number;
  readonly connectionBudgetBytes?: number;
  readonly maxExtents?: number;
  /** Require TLS (NBD_OPT_STARTTLS) with this certificate chain and private key (PEM). */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

const DEFAULTS = { maxConnections: 16, handshakeTimeoutMs: 30_000, maxOptions: 256, connectionBudgetBytes: 64 << 20, maxExtents: 65536 } as const;

type Settings = { -readonly [K in keyof typeof DEFAULTS]: number } & { exports: NbdExportTable; secureContext: SecureContext | null };

export class NbdServer {
  #server: Server;
  #sockets = new Set<Socket>();
  #sessions = new Set<Promise<void>>();
  #live = new Set<Session>();
  #opts: Settings;
  #closing = false;
  readonly address: Target;
  /** Clients must negotiate TLS. */
  readonly tls: boolean;

  private constructor(server: Server, address: Target, opts: Settings) {
    this.#server = server;
    this.address = address;
    this.#opts = opts;
    this.tls = opts.secureContext !== null;
    server.on('connection', (socket) => this.#accept(socket));
  }

  static async listen(options: NbdServerOptions): Promise<NbdServer> {
    let secureContext: SecureContext | null = null;
    if (options.tls) {
      try {
        secureContext = createSecureContext({ cert: options.tls.cert, key: options.tls.key });
      } catch (err) {
        throw new SvError('SV_ERR_NBD_TLS_CERT', `the NBD server's TLS certificate/key are not usable: ${(err as Error).message}`, {}, { cause: err });
      }
    }
    const opts = { ...DEFAULTS, ...options, secureContext };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const v = opts[key];
      if (!Number.isSafeInteger(v) || v < 1) throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `NbdServerOptions.${key} must be a positive integer, got ${v}`, { option: key, value: v });
    }
    if (opts.connectionBudgetBytes < 33 << 20) {
      throw new SvError('SV_ERR_CORE_INVALID_ARGUMENT', `NbdServerOptions.connectionBudgetBytes must hold one 32 MiB request, got ${opts.connectionBudgetBytes}`, { option: 'connectionBudgetBytes' });
    }
    const server = createServer({ noDelay: true, pauseOnConnect: false });
    const where = 'path' in options.listen ? options.listen : { host: options.listen.host ?? '127.0.0.1', port: options.listen.port };
    if ('path' in where) await rm(where.path, { force: true }); // a stale socket file of a dead server
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new SvError('SV_ERR_NBD_LISTEN', `cannot listen on ${describeTarget('path' in where ? where : { host: where.host, port: where.port })}: ${err.message}`, { listen: where }, { cause: err })));
      server.listen('path' in where ? { path: where.path } : { host: where.host, port: where.port }, () => resolve());
    });
    const bound = server.address();
    const address: Target = 'path' in where ? where : { host: where.host, port: typeof bound === 'object' && bound ? bound.port : where.port };
    return new NbdServer(server, address, opts);
  }

  /** Bytes of requests and replies in flight over all connections (each connection ≤ its budget). */
  get bytesInFlight(): number {
    let n = 0;
    for (const s of this.#live) n += s.bytesInFlight;
    return n;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#sockets.size;
  }

  #accept(socket: Socket): void {
    if (this.#closing || this.#sockets.size >= this.#opts.maxConnections) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix client';
    const session = this.#serve(Wire.accept(socket, peer)).catch(() => undefined);
    this.#sessions.add(session);
    void session.finally(() => this.#sessions.delete(session));
  }

  async #serve(wire: Wire): Promise<void> {
    const conn: HandshakeConnection = this.#opts.secureContext ? { wire, starttls: (plain) => this.#starttls(plain) } : { wire };
    const timer = setTimeout(() => conn.wire.fail(new SvError('SV_ERR_NBD_TIMEOUT', `NBD client ${wire.target} did not finish the handshake in ${this.#opts.handshakeTimeoutMs} ms`, {})), this.#opts.handshakeTimeoutMs);
    timer.unref();
    let agreed;
    try {
      agreed = await serverHandshake(conn, this.#opts.exports, this.#opts.maxOptions);
    } catch (err) {
      // A malformed option header (bad magic, data above the cap), a failed TLS handshake: hang up.
      conn.wire.fail(isSvError(err) ? err : new SvError('SV_ERR_NBD_PROTOCOL', `NBD client ${wire.target}: ${String(err)}`, {}));
      return;
    } finally {
      clearTimeout(timer);
    }
    wire = conn.wire;
    if (agreed) {
      const session = new Session(wire, agreed, { budgetBytes: this.#opts.connectionBudgetBytes, maxExtents: this.#opts.maxExtents });
      this.#live.add(session);
      try {
        await session.run();
      } finally {
        this.#live.delete(session);
      }
    }
    await wire.end(1000);
  }

  /**
   * NBD_OPT_STARTTLS was acknowledged: run the TLS handshake on the plain wire's socket and return a wire
   * over TLS. The TLS socket replaces the plain one in the connection set (close() ends it).
   */
  async #starttls(plain: Wire): Promise<Wire> {
    const raw = plain.release();
    if (!raw) throw plain.failure!;
    const secure = new TLSSocket(raw, { isServer: true, secureContext: this.#opts.secureContext! });
    secure.on('error', () => undefined); // the handshake's failure is reported below, later ones by the wire
    this.#sockets.delete(raw);
    this.#sockets.add(secure);
    secure.once('close', () => {
      this.#sockets.delete(secure);
      raw.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      const fail = (err?: Error): void => {
        secure.destroy();
        reject(new SvError('SV_ERR_NBD_PROTOCOL', `NBD client ${plain.target}: TLS handshake failed${err ? `: ${err.message}` : ''}`, { target: plain.target }, err ? { cause: err } : undefined));
      };
      const closed = (): void => fail();
      secure.once('secure', () => {
        secure.off('error', fail);
        secure.off('close', closed);
        resolve();
      });
      secure.once('error', fail);
      secure.once('close', closed);
    });
    return Wire.accept(secure, plain.target);
  }

  /** Stop listening and end every connection. */
  async close(): Promise<void> {
    this.#closing = true;
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.end();
    const grace = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, 2000);
    await Promise.allSettled([...this.#sessions]);
    clearTimeout(grace);
    await stopped;
  }
}
