/** Test PKI for NBD over TLS: a CA and a server certificate (SAN 127.0.0.1, localhost) made with openssl. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run } from '../helpers/env.js';

/** CA + server certificate in `dir` (ca-cert.pem is what libnbd and qemu clients read from a folder). */
export function makePki(dir: string): { ca: string; cert: string; key: string } {
  const openssl = requireTool('openssl');
  const p = (f: string): string => join(dir, f);
  run(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca-key.pem'), '-out', p('ca-cert.pem'), '-days', '2', '-subj', '/CN=shadowvault test CA']);
  run(openssl, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server-key.pem'), '-out', p('server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(p('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(openssl, ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca-cert.pem'), '-CAkey', p('ca-key.pem'), '-CAcreateserial', '-out', p('server-cert.pem'), '-days', '2', '-extfile', p('ext.cnf')]);
  return { ca: p('ca-cert.pem'), cert: p('server-cert.pem'), key: p('server-key.pem') };
}

