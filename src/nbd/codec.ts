/**
 * The NBD protocol codec: pure encode/decode of every message both sides send, with no I/O and no state.
 * The client (client.ts) and the coming export server (issue 12) share it.
 *
 *   codec-base.ts          coded decoder errors, safe u64 fields, capped strings, cursor/builder
 *   codec-options.ts       handshake: greeting, client flags, options and their data, option replies
 *   codec-transmission.ts  requests, simple replies, structured chunks and their payloads
 *
 * Every decoder checks sizes first and throws SV_ERR_NBD_PROTOCOL (a field breaks the spec) or
 * SV_ERR_NBD_TOO_LARGE (an announced length exceeds protocol.ts LIMIT) naming the structure and field;
 * test/nbd/codec-fuzz.test.ts holds them to that.
 */
export * from './codec-options.js';
export * from './codec-transmission.js';
export { violation, tooLarge } from './codec-base.js';
