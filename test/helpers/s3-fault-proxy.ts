/**
 * A fault-injecting HTTP proxy on 127.0.0.1:<free port> in front of an S3 server (s3rver or Ceph RGW), for
 * tests of retries and coded failures against real servers. The client points its endpoint at the proxy;
 * requests pass through unchanged (the Host header too, so SigV4 signatures still verify) unless a rule
 * matches. Rules are tried in order; each fires `times` times (default: always), then stops matching:
 *   { kind: 'status', status, code }  answer at once with an S3 XML error (500 InternalError, 503 SlowDown...)
 *   { kind: 'drop', afterBytes }      read that many request body bytes, then destroy the connection
 *                                     (a connection lost mid-upload: the server sees a truncated request)
 *   { kind: 'delay', ms }             hold the request that long, then pass it on
 *   { kind: 'corrupt', atByte }       pass it on with one request body byte flipped (bits rotting on the way)
 * Matching: method, a RegExp on the path (bucket/key), a substring of the query ('uploadId', 'partNumber=2').
 * `requests` logs every request seen (method, path, query) for assertions and request counts.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type FaultAction =
  | { readonly kind: 'status'; readonly status: number; readonly code: string }
  | { readonly kind: 'drop'; readonly afterBytes: number }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'corrupt'; readonly atByte: number };

export interface FaultMatch {
  readonly method?: string;
  readonly path?: RegExp;
  readonly query?: string;
}

export interface ProxyRule extends FaultMatch {
  readonly action: FaultAction;
  /** How many times it fires (default: every matching request). */
  readonly times?: number;
}

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** The rule that fired on it (index in the rules added), or null. */
  readonly fault: FaultAction['kind'] | null;
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface FaultProxy {
  readonly endpoint: string;
  readonly requests: SeenRequest[];
  add(rule: ProxyRule): void;
  clear(): void;
  close(): Promise<void>;
}

function matches(m: FaultMatch, method: string, path: string, query: string): boolean {
  return (m.method === undefined || m.method === method) && (m.path === undefined || m.path.test(path))
    && (m.query === undefined || query.includes(m.query));
}

export async function startFaultProxy(t: Teardown, upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  const rules: { rule: ProxyRule; left: number }[] = [];
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const out = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  };

  const server = createServer((req, res) => {
    const [path = '', query = ''] = (req.url ?? '').split('?');
    const method = req.method ?? 'GET';
    const hit = rules.find((r) => r.left > 0 && matches(r.rule, method, path, query));
    if (hit) hit.left--;
    const action = hit?.rule.action ?? null;
    requests.push({ method, path, query, fault: action?.kind ?? null });
    if (!action) return forward(req, res);
    if (action.kind === 'delay') {
      setTimeout(() => forward(req, res), action.ms);
      return;
    }
    if (action.kind === 'corrupt') {
      let seen = 0;
      const out = request({ host: up.hostname, port: up.port, method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on('error', () => res.destroy());
      req.on('data', (chunk: Buffer) => {
        const at = action.atByte - seen;
        seen += chunk.length;
        if (at >= 0 && at < chunk.length) { chunk = Buffer.from(chunk); chunk[at]! ^= 0x01; }
        out.write(chunk);
      });
      req.on('end', () => out.end());
      return;
    }
    if (action.kind === 'status') {
      req.resume();
      req.on('end', () => {
        res.writeHead(action.status, { 'content-type': 'application/xml', connection: 'close' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${action.code}</Code><Message>injected by the test's fault proxy</Message><RequestId>fault</RequestId></Error>`);
      });
      return;
    }
    // drop: pass the request on, but cut both connections after `afterBytes` of its body.
    let seen = 0;
    const out = request({ host: up.hostname, port: up.port, method, path: req.url, headers: req.headers });
    out.on('error', () => {});
    const cut = (): void => { out.destroy(); req.socket.destroy(); };
    if (action.afterBytes === 0) return cut();
    req.on('data', (chunk: Buffer) => {
      const room = action.afterBytes - seen;
      seen += chunk.length;
      if (room > 0) out.write(chunk.subarray(0, room));
      if (seen >= action.afterBytes) cut();
    });
    req.on('end', cut);
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(close);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    add: (rule) => rules.push({ rule, left: rule.times ?? Number.POSITIVE_INFINITY }),
    clear: () => { rules.length = 0; },
    close,
  };
}
