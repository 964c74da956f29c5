/**
 * NBD protocol constants, declared once for the client and the (coming) server.
 * Source: the NBD protocol specification (NetworkBlockDevice/nbd, doc/proto.md) and, for the `qemu:`
 * namespace, QEMU's docs/interop/nbd.txt. All integers on the wire are big-endian.
 *
 * Message layouts (sizes below in SIZE):
 *   server greeting      NBDMAGIC u64 | IHAVEOPT u64 | handshake flags u16                       18 bytes
 *   client flags         u32                                                                      4 bytes
 *   option               IHAVEOPT u64 | option u32 | length u32 | data                           16 + length
 *   option reply         OPTION_REPLY u64 | option u32 | reply type u32 | length u32 | data     20 + length
 *   EXPORT_NAME answer   size u64 | transmission flags u16 | 124 zero bytes (unless NO_ZEROES)   10 (+124)
 *   request              REQUEST u32 | command flags u16 | type u16 | cookie u64 | offset u64 | length u32
 *                        | data (WRITE only)                                                     28 + data
 *   simple reply         SIMPLE_REPLY u32 | error u32 | cookie u64 | data (READ, no error)        16 + data
 *   structured chunk     STRUCTURED_REPLY u32 | flags u16 | type u16 | cookie u64 | length u32 | payload
 *                                                                                                20 + length
 * Structured payloads: OFFSET_DATA offset u64 | data; OFFSET_HOLE offset u64 | size u32;
 * BLOCK_STATUS context id u32 | (length u32 | flags u32)+; ERROR error u32 | message length u16 | message;
 * ERROR_OFFSET as ERROR then offset u64.
 *
 * LIMIT holds what this side accepts from a peer: every length a peer announces is checked against it
 * before anything is allocated.
 */

export const MAGIC = {
  /** 'NBDMAGIC': first 8 bytes of every server greeting. */
  NBD: 0x4e42444d41474943n,
  /** 'IHAVEOPT': newstyle greeting, and the prefix of every client option. */
  IHAVEOPT: 0x49484156454f5054n,
  /** Oldstyle greeting's second magic (not supported, recognised for a clear error). */
  OLDSTYLE: 0x00420281861253n,
  OPTION_REPLY: 0x3e889045565a9n,
  REQUEST: 0x25609513,
  SIMPLE_REPLY: 0x67446698,
  STRUCTURED_REPLY: 0x668e33ef,
} as const;

export const SIZE = {
  GREETING: 18,
  CLIENT_FLAGS: 4,
  OPTION_HEADER: 16,
  OPTION_REPLY_HEADER: 20,
  EXPORT_NAME_REPLY: 10,
  EXPORT_NAME_ZEROES: 124,
  REQUEST: 28,
  SIMPLE_REPLY: 16,
  STRUCTURED_HEADER: 20,
  /** A reply's magic alone: read first to learn which header follows. */
  REPLY_MAGIC: 4,
  INFO_EXPORT: 12,
  INFO_BLOCK_SIZE: 14,
  OFFSET_DATA_HEADER: 8,
  OFFSET_HOLE: 12,
  BLOCK_DESCRIPTOR: 8,
  BLOCK_STATUS_HEADER: 4,
  ERROR_HEADER: 6,
  ERROR_OFFSET_TAIL: 8,
} as const;

export const LIMIT = {
  /** Strings (export names, context names, messages) MUST be no longer than 4096 bytes. */
  STRING: 4096,
  /** Option data this side encodes or accepts (GO/META_CONTEXT with a few names). */
  OPTION_DATA: 64 * 1024,
  /** Option reply payloads (REP_SERVER: name + description; META_CONTEXT: id + name; errors). */
  OPTION_REPLY: 4 + 2 * 4096,
  /** Option replies to one option before we give up (INFO items, META_CONTEXT entries, LIST entries). */
  OPTION_REPLIES: 1024,
  /** Extents in one BLOCK_STATUS chunk: servers SHOULD NOT send more than 2^20. */
  EXTENTS_PER_CHUNK: 1 << 20,
  /** Default largest READ payload; 2^25 is what every server must accept. */
  PAYLOAD: 1 << 25,
  /** Largest payload size a server may announce that we will honour (bigger ones are clamped to this). */
  PAYLOAD_CEILING: 1 << 28,
  /** Largest minimum block size a server may announce. */
  MIN_BLOCK: 1 << 16,
  /** Content and error chunks in one READ reply that do not touch (fragmentation cap). */
  READ_FRAGMENTS: 8192,
} as const;

/** Handshake flags (server, u16). */
export const HANDSHAKE_FLAG = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;
/** Client flags (u32). */
export const CLIENT_FLAG = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

/** Transmission flags (u16). */
export const TX_FLAG = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

/** Bit 31 marks an error reply. */
export const REP_ERROR_BIT = 0x80000000;
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: REP_ERROR_BIT + 1,
  ERR_POLICY: REP_ERROR_BIT + 2,
  ERR_INVALID: REP_ERROR_BIT + 3,
  ERR_PLATFORM: REP_ERROR_BIT + 4,
  ERR_TLS_REQD: REP_ERROR_BIT + 5,
  ERR_UNKNOWN: REP_ERROR_BIT + 6,
  ERR_SHUTDOWN: REP_ERROR_BIT + 7,
  ERR_BLOCK_SIZE_REQD: REP_ERROR_BIT + 8,
  ERR_TOO_BIG: REP_ERROR_BIT + 9,
} as const;

export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;

export const CMD_FLAG = { FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3, FAST_ZERO: 1 << 4 } as const;

export const REPLY_FLAG = { DONE: 1 << 0 } as const;

/** Bit 15 marks an error chunk. */
export const REPLY_TYPE_ERROR_BIT = 0x8000;
export const REPLY_TYPE = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: REPLY_TYPE_ERROR_BIT + 1,
  ERROR_OFFSET: REPLY_TYPE_ERROR_BIT + 2,
} as const;

/** Error values of simple replies and error chunks. */
export const NBD_ERRNO = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Metadata contexts and their extent flags. */
export const CONTEXT = {
  BASE_ALLOCATION: 'base:allocation',
  QEMU_ALLOCATION_DEPTH: 'qemu:allocation-depth',
  /** Followed by the bitmap's export name. */
  QEMU_DIRTY_BITMAP_PREFIX: 'qemu:dirty-bitmap:',
} as const;
/** base:allocation flags. */
export const STATE = { HOLE: 1 << 0, ZERO: 1 << 1 } as const;
/** qemu:dirty-bitmap:* flag. */
export const STATE_DIRTY = 1 << 0;

/** The name of a constant's value in one of the tables above, for error messages ("NBD_REP_ERR_UNKNOWN"). */
export function constantName(table: Readonly<Record<string, number>>, prefix: string, value: number): string {
  for (const [name, v] of Object.entries(table)) if (v === value) return `${prefix}${name}`;
  return `${prefix}0x${value.toString(16)}`;
}
