/**
 * The option haggling of an NBD handshake byte by byte, for server tests that send what the real client
 * (handshake.ts) never does: a plain socket past the greeting and client flags, exact reads, option replies.
 */
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { encodeClientFlags } from '../../src/nbd/codec.js';
import { CLIENT_FLAG } from '../../src/nbd/protocol.js';

/** Read exactly `n` bytes from `s`. */
export function readN(s: Socket | TLSSocket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      got = Buffer.concat([got, b]);
      if (got.length >= n) {
        s.off('data', onData);
        s.off('close', onClose);
        s.pause();
        if (got.length > n) s.unshift(got.subarray(n));
        resolve(got.subarray(0, n));
      }
    };
    const onClose = (): void => reject(new Error(`closed after ${got.length} of ${n} bytes`));
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
  });
}

/** Option reply: magic(8) option(4) type(4) length(4) data. */
export async function optionReply(s: Socket | TLSSocket): Promise<{ type: number; text: string }> {
  const h = await readN(s, 20);
  const len = h.readUInt32BE(16);
  const data = len ? await readN(s, len) : Buffer.alloc(0);
  return { type: h.readUInt32BE(12), text: data.toString('utf8') };
}

/** A plain connection past the greeting and client flags. */
export async function handshakeStart(to: { host: string; port: number } | { path: string }): Promise<Socket> {
  const s = connect(to);
  s.on('error', () => undefined);
  await readN(s, 18);
  s.write(encodeClientFlags(CLIENT_FLAG.FIXED_NEWSTYLE | CLIENT_FLAG.NO_ZEROES));
  return s;
}
