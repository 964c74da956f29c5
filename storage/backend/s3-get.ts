/**
 * Ranged GETs of the S3 backend on a plain-HTTP endpoint (a gateway on the LAN or loopback: Ceph RGW, MinIO),
 * without the SDK's request pipeline: a restore or verify sends one GET per pack span (~1,400 for the 4 GiB
 * benchmark), and per GET the SDK's middleware stack, its stream of 64 KiB socket chunks (each a fresh buffer,
 * then gathered into the destination: a second copy of every byte and 1.8 GB of garbage per restore) cost our
 * CLI more CPU than the decoding. Here each GET is:
 *   - signed by the SDK's own SigV4 signer with the client's credential chain (`client.config.signer()`, the
 *     same object the SDK signs with: env variables, shared files, roles; credentials never leave it);
 *   - written as one request head on a kept-alive socket (at most `maxSockets` open, idle ones unref'd);
 *   - answered into the destination buffer itself: the socket reads with `onread` into the buffer this module
 *     gives it, which is the response head's scratch until the head is parsed (http-head.ts), then the
 *     unfilled rest of the `length`-byte destination, so the kernel copies the body straight to where the
 *     worker will decode it (no intermediate chunks, no gathering copy).
 * What it accepts: 206 with exactly `length` bytes (Content-Length). Everything else keeps the SDK's meaning:
 *   - an error status (4xx/5xx) becomes the same coded error as through the SDK (s3-errors.ts s3Error, fed the
 *     S3 error <Code> of the body and the status): NOT_FOUND, AUTH, ACCESS_DENIED, SHORT_READ (416),
 *     TRANSIENT (5xx, SlowDown) ...;
 *   - a 206 with fewer bytes than asked: `{ short: total }` (the caller's SV_ERR_BACKEND_SHORT_READ);
 *   - any other success (200: Range ignored; a chunked body): `fallback`, and the caller asks through the SDK;
 *   - a reset, an early end or a timeout: SV_ERR_BACKEND_TRANSIENT (the retry wrapper's job), except that a
 *     reused idle socket the server had closed before any answer byte is replaced once by a fresh one (the
 *     usual keep-alive race; a GET is idempotent);
 *   - a malformed head: SV_ERR_BACKEND_IO (http-head.ts).
 * HTTPS endpoints keep the SDK path (S3Backend.getRange): TLS sockets cannot read into given buffers.
 */
import { connect, type Socket } from 'node:net';
import { SvError } from '../../src/errors/index.js';
import { contentLength, HEAD_MAX, parseResponseHead, type ResponseHead } from './http-head.js';
import { s3Error } from './s3-errors.js';
import { takeSpanBuffer } from './span-buffers.js';

/** The SDK's SigV4 signer, as `S3Client.config.signer()` gives it (only what is used here). */
export interface RequestSigner {
  sign(request: SignRequest, options: { signingRegion: string; signingService: string }): Promise<{ headers: Record<string, string> }>;
}

interface SignRequest {
  method: string; protocol: string; hostname: string; port?: number; path: string;
  query: Record<string, string>; headers: Record<string, string>;
}

export interface RangedGetOptions {
  readonly endpoint: URL;
  readonly bucket: string;
  readonly forcePathStyle: boolean;
  readonly region: string;
  readonly signer: () => Promise<RequestSigner>;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

/** What a GET gave: the bytes, the object's size when the range ran past its end, or "ask the SDK". */
export type RangedGetResult = Buffer | { readonly short: number | null } | 'fallback';

/** SHA-256 of the empty body (the payload hash of a GET). */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** The largest error body read (an S3 error document is well under 1 KiB); a longer one closes the socket. */
const ERROR_BODY_MAX = 64 * 1024;
/** Idle sockets kept for reuse at most. */
const IDLE_MAX = 32;

/** A key's path segments encoded as the SDK does for S3 (RFC 3986 unreserved kept, '/' kept). */
function encodePath(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/gu, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

interface Pending {
  readonly where: string;
  readonly bucket: string;
  readonly key: string;
  readonly length: number;
  resolve(r: RangedGetResult): void;
  reject(err: unknown): void;
}

/** One kept-alive connection: reads responses with `onread` into the buffer `#next()` names. */
class Connection {
  readonly socket: Socket;
  readonly #scratch = Buffer.allocUnsafe(HEAD_MAX);
  #scratchLen = 0;
  #head: ResponseHead | null = null;
  /** The body's destination (the asked bytes, or an error body) and how much of it is filled. */
  #body: Buffer | null = null;
  #bodyAt = 0;
  #pending: Pending | null = null;
  /** Bytes of the current answer received (0: a failure may be a stale keep-alive socket). */
  received = 0;
  /** Served a request before (a failure before any byte may be the server's idle close). */
  reused = false;
  #closing = false;
  /** The socket's inactivity timeout now: the request's while one is in flight, else none. */
  #timeoutMs = 0;
  #onDone: (c: Connection, keep: boolean) => void;

  constructor(url: URL, connectTimeoutMs: number, onDone: (c: Connection, keep: boolean) => void) {
    this.#onDone = onDone;
    this.socket = connect({
      host: url.hostname.replace(/^\[|\]$/gu, ''), port: Number(url.port || 80), noDelay: true,
      onread: { buffer: () => this.#next(), callback: (n: number) => { this.#read(n); return true; } },
    });
    this.socket.setTimeout(connectTimeoutMs);
    this.socket.once('connect', () => this.socket.setTimeout(this.#timeoutMs));
    this.socket.on('timeout', () => this.socket.destroy(Object.assign(new Error('the S3 request timed out'), { name: 'TimeoutError', code: 'ETIMEDOUT' })));
    this.socket.on('error', (err) => this.#fail(err));
    this.socket.on('end', () => this.#fail(Object.assign(new Error('the server closed the connection'), { name: 'ERR_STREAM_PREMATURE_CLOSE' })));
    this.socket.on('close', () => this.#fail(Object.assign(new Error('the connection closed'), { name: 'ERR_STREAM_PREMATURE_CLOSE' })));
    this.socket.resume();
  }

  get busy(): boolean {
    return this.#pending !== null;
  }

  get alive(): boolean {
    return !this.socket.destroyed && !this.#closing;
  }

  /** Send one GET; the answer settles `p`. */
  send(head: string, p: Pending, timeoutMs: number): void {
    this.#pending = p;
    this.#head = null;
    this.received = 0;
    this.socket.ref();
    this.#timeoutMs = timeoutMs;
    if (!this.socket.connecting) this.socket.setTimeout(timeoutMs); // else the connect timeout runs until connected
    this.socket.write(head, 'latin1');
  }

  /** Where the socket reads next (asked after every read): changed only inside the read callback. */
  #next(): Uint8Array {
    if (this.#body) return this.#body.subarray(this.#bodyAt);
    return this.#scratch.subarray(this.#scratchLen);
  }

  #read(n: number): void {
    const p = this.#pending;
    if (!p) {
      // Bytes nobody asked for: the connection's state is unknown; drop it.
      this.#closing = true;
      this.socket.destroy();
      return;
    }
    this.received += n;
    try {
      if (this.#body) {
        this.#bodyAt += n;
      } else {
        this.#scratchLen += n;
        if (!this.#start(p)) return;
      }
      if (this.#body && this.#bodyAt === this.#body.length) this.#finish(p);
    } catch (err) {
      this.#closing = true;
      this.#settle(false, () => p.reject(err));
      this.socket.destroy();
    }
  }

  /** The head may be complete: parse it and choose where the body goes; false while more head is needed. */
  #start(p: Pending): boolean {
    let head = parseResponseHead(this.#scratch, this.#scratchLen, p.where);
    while (head && head.status < 200) { // 1xx interim answers: skip
      this.#scratch.copy(this.#scratch, 0, head.length, this.#scratchLen);
      this.#scratchLen -= head.length;
      head = parseResponseHead(this.#scratch, this.#scratchLen, p.where);
    }
    if (!head) return false;
    this.#head = head;
    const size = contentLength(head, p.where);
    const chunked = head.headers.has('transfer-encoding');
    if (head.status === 206 && size === p.length && !chunked) {
      this.#body = takeSpanBuffer(p.length);
    } else if (head.status >= 300 && size !== null && size <= ERROR_BODY_MAX && !chunked) {
      this.#body = Buffer.allocUnsafe(size);
    } else {
      // Short 206, a 200, a chunked or unbounded body: answered without reading the body; the socket goes.
      this.#closing = true;
      const total = /\/(\d+)\s*$/u.exec(head.headers.get('content-range') ?? '');
      const r: RangedGetResult = head.status === 206 && size !== null && size < p.length ? { short: total ? Number(total[1]) : null } : 'fallback';
      if (head.status >= 300) this.#settle(false, () => p.reject(this.#error(p, head!, null)));
      else this.#settle(false, () => p.resolve(r));
      this.socket.destroy();
      return false;
    }
    const extra = this.#scratchLen - head.length;
    if (extra > this.#body.length) throw new SvError('SV_ERR_BACKEND_IO', `${p.where}: the server sent ${extra - this.#body.length} bytes past the response body`, { where: p.where });
    this.#scratch.copy(this.#body, 0, head.length, this.#scratchLen);
    this.#bodyAt = extra;
    return true;
  }

  #finish(p: Pending): void {
    const head = this.#head!;
    const body = this.#body!;
    const keep = head.minor >= 1 && !/\bclose\b/iu.test(head.headers.get('connection') ?? '');
    // The socket asks #next() for its next buffer right after this read's callback: the scratch from its start.
    this.#body = null;
    this.#scratchLen = 0;
    if (head.status === 206) this.#settle(keep, () => p.resolve(body));
    else this.#settle(keep, () => p.reject(this.#error(p, head, body)));
  }

  /** The coded error of an error answer: the S3 error code of its body, else the status (s3-errors.ts). */
  #error(p: Pending, head: ResponseHead, body: Buffer | null): SvError {
    const code = body ? /<Code>([^<]{1,128})<\/Code>/u.exec(body.toString('latin1'))?.[1] : undefined;
    return s3Error({ name: code ?? '', message: '', $metadata: { httpStatusCode: head.status } }, { op: 'GET', bucket: p.bucket, key: p.key });
  }

  #settle(keep: boolean, done: () => void): void {
    this.#pending = null;
    this.#timeoutMs = 0;
    this.socket.setTimeout(0);
    if (!keep) this.#closing = true;
    this.#onDone(this, keep);
    done();
  }

  #fail(err: unknown): void {
    this.#closing = true;
    const p = this.#pending;
    if (!p) return;
    this.#settle(false, () => p.reject(err));
  }

  close(): void {
    this.#closing = true;
    this.socket.destroy();
  }
}

export class RangedGets {
  readonly #o: RangedGetOptions;
  readonly #host: string;
  readonly #idle: Connection[] = [];
  readonly #open = new Set<Connection>();
  #signer: Promise<RequestSigner> | undefined;
  #closed = false;

  constructor(o: RangedGetOptions) {
    if (o.endpoint.protocol !== 'http:') throw new RangeError(`RangedGets needs an http: endpoint, not ${o.endpoint.protocol}`);
    this.#o = o;
    this.#host = o.forcePathStyle ? o.endpoint.host : `${o.bucket}.${o.endpoint.host}`;
  }

  /**
   * Bytes [offset, offset + length) of object `key` (the full key, prefix included), length ≥ 1. See the top
   * comment for what each answer gives.
   */
  async get(key: string, offset: number, length: number): Promise<RangedGetResult> {
    if (this.#closed) throw new SvError('SV_ERR_BACKEND_IO', `s3://${this.#o.bucket}/${key}: the backend is closed`, { bucket: this.#o.bucket, key });
    const base = this.#o.endpoint.pathname.replace(/\/+$/u, '');
    const path = `${base}${this.#o.forcePathStyle ? `/${encodePath(this.#o.bucket)}` : ''}/${encodePath(key)}`;
    const where = `s3://${this.#o.bucket}/${key} bytes ${offset}-${offset + length - 1}`;
    const head = await this.#sign(path, `bytes=${offset}-${offset + length - 1}`);
    for (let attempt = 0; ; attempt++) {
      const conn = this.#takeIdle() ?? this.#connect();
      const reused = conn.reused;
      try {
        return await new Promise<RangedGetResult>((resolve, reject) => conn.send(head, { where, bucket: this.#o.bucket, key, length, resolve, reject }, this.#o.requestTimeoutMs));
      } catch (err) {
        if (reused && conn.received === 0 && attempt === 0 && !(err instanceof SvError)) continue; // stale keep-alive socket
        throw s3Error(err, { op: 'GET', bucket: this.#o.bucket, key });
      }
    }
  }

  async #sign(path: string, range: string): Promise<string> {
    this.#signer ??= this.#o.signer();
    this.#signer.catch(() => { this.#signer = undefined; });
    const signer = await this.#signer;
    const url = this.#o.endpoint;
    const signed = await signer.sign({
      method: 'GET', protocol: 'http:', hostname: this.#o.forcePathStyle ? url.hostname : `${this.#o.bucket}.${url.hostname}`,
      ...(url.port ? { port: Number(url.port) } : {}), path, query: {},
      headers: { host: this.#host, range, 'x-amz-content-sha256': EMPTY_SHA256 },
    }, { signingRegion: this.#o.region, signingService: 's3' });
    let head = `GET ${path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(signed.headers)) head += `${name}: ${value}\r\n`;
    return `${head}\r\n`;
  }

  /** A kept-alive connection the server has not closed meanwhile, or undefined. */
  #takeIdle(): Connection | undefined {
    for (let c = this.#idle.pop(); c; c = this.#idle.pop()) if (c.alive) return c;
    return undefined;
  }

  #connect(): Connection {
    const conn = new Connection(this.#o.endpoint, this.#o.connectTimeoutMs, (c, keep) => {
      if (keep && !this.#closed && this.#idle.length < IDLE_MAX && c.alive) {
        c.reused = true;
        c.socket.unref();
        this.#idle.push(c);
      } else {
        this.#open.delete(c);
        c.close();
      }
    });
    conn.socket.once('close', () => {
      this.#open.delete(conn);
      const i = this.#idle.indexOf(conn);
      if (i >= 0) this.#idle.splice(i, 1);
    });
    this.#open.add(conn);
    return conn;
  }

  /** Close every socket; GETs in flight fail (SV_ERR_BACKEND_TRANSIENT), later ones are refused. */
  close(): void {
    this.#closed = true;
    for (const c of this.#open) c.close();
    this.#open.clear();
    this.#idle.length = 0;
  }
}
