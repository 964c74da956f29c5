/**
 * The NBD server's TLS certificate and key, read from PEM files when an export starts (CLI `export
 * --tls-cert/--tls-key`, the API's `tls: true` with the appliance's own serve certificate). Contract: resolves
 * with the file contents once they form a usable pair (node's TLS accepts them); otherwise rejects with
 * SV_ERR_NBD_TLS_CERT naming the file (unreadable, not PEM) or both files (key does not fit, bad PEM).
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { SvError } from '../errors/index.js';

export interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

async function readPem(file: string, what: string): Promise<Buffer> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (err) {
    throw new SvError('SV_ERR_NBD_TLS_CERT', `cannot read the TLS ${what} ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  if (!pem.includes('-----BEGIN ')) throw new SvError('SV_ERR_NBD_TLS_CERT', `the TLS ${what} ${file} is not PEM (no -----BEGIN line)`, { file });
  return pem;
}

export async function readTlsPair(certFile: string, keyFile: string): Promise<TlsPair> {
  const [cert, key] = await Promise.all([readPem(certFile, 'certificate'), readPem(keyFile, 'key')]);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new SvError('SV_ERR_NBD_TLS_CERT', `the TLS certificate ${certFile} and key ${keyFile} are not a usable pair: ${(err as Error).message}`, { certFile, keyFile }, { cause: err });
  }
  return { cert, key };
}
