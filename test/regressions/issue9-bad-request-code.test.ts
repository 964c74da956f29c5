/**
 * Issue 9: malformed HTTP framing was answered `{"error":"Bad Request"}` (fastify's default client error
 * handler) without an SV_ERR_* code. Now Node's parser errors and fastify's pre-routing errors (bad URL
 * encoding) answer coded bodies like every other error.
 */
import { connect } from 'node:net';
import t from 'tap';
import { startTestAppliance } from '../api/helpers.js';

/** Send raw bytes to the server and read its reply until it closes the connection. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(request));
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

function parse(reply: string): { status: number; body: { code?: string; message?: string } } {
  const [head, body = ''] = reply.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1]), body: JSON.parse(body) as { code?: string } };
}

t.test('malformed framing on a real socket gets a coded 400', async (t) => {
  const a = await startTestAppliance(t);
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (a.app.server.address() as { port: number }).port;
  for (const [what, request] of [
    ['a header line without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n'],
    ['a broken request line', 'GARBAGE\r\n\r\n'],
    ['a bad chunked body', 'POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n\r\n'],
  ] as const) {
    const r = parse(await raw(port, request));
    t.equal(r.status, 400, `${what}: 400`);
    t.equal(r.body.code, 'SV_ERR_API_BAD_REQUEST', `${what}: coded body`);
  }
  const huge = parse(await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`));
  t.equal(huge.status, 431);
  t.equal(huge.body.code, 'SV_ERR_API_HEADERS_TOO_LARGE');
});

t.test('a URL with broken percent-encoding gets a coded 400', async (t) => {
  const a = await startTestAppliance(t);
  const r = await a.call('viewer', 'GET', '/api/v1/sources/%E0%A4%A');
  t.equal(r.statusCode, 400);
  t.equal(r.json().code, 'SV_ERR_API_BAD_REQUEST');
});
