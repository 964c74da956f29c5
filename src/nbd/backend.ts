/**
 * What the NBD server serves: a byte-addressed disk with an allocation map. The server (server.ts) speaks
 * the protocol and checks every request against `size`, the payload limit and the announced alignment
 * before it calls a backend, so a backend only ever sees in-range, non-empty requests.
 *
 * Contract:
 * - `read(offset, length)` returns exactly `length` bytes; concurrent calls are allowed. The server does not
 *   modify them; once the reply carrying them is written (or the connection failed), it calls `readDone(data)`
 *   when the backend has one, once: the backend may then reuse that memory.
 * - `status(offset, length, maxExtents)` describes [offset, offset + length) from `offset` on as at most
 *   `maxExtents` consecutive extents (≥ 1), each with a nonzero length; together they may cover less than
 *   asked (the client asks again for the rest) but never more. `hole` means unallocated (reads as zero),
 *   `zero` means reads as zero.
 * - A read-only backend (`writable` false) is never asked to write, trim or zero (the server answers EPERM).
 * - `write`, `writeZeroes`, `trim` may run concurrently with each other and with reads; overlapping
 *   requests in flight may be applied in any order (the protocol gives no ordering), but each completed one
 *   is applied whole. `fua` asks for the write to be durable before the call returns; `flush` makes every
 *   completed write durable. `trim` may do nothing.
 * - Errors thrown are reported to the client as NBD_EIO (NBD_ENOSPC when the cause is ENOSPC) with the message;
 *   the connection stays up.
 */
export interface BackendExtent {
  readonly length: number;
  readonly hole: boolean;
  readonly zero: boolean;
}

export interface NbdBackend {
  readonly size: number;
  readonly writable: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  readDone?(data: Buffer): void;
  status(offset: number, length: number, maxExtents: number): Promise<BackendExtent[]>;
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  writeZeroes(offset: number, length: number, fua: boolean): Promise<void>;
  trim(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
}

/** An export the server offers: its name (the empty name is the default export), text for NBD_OPT_LIST. */
export interface NbdExportEntry {
  readonly name: string;
  readonly description: string;
  readonly backend: NbdBackend;
}

/** The server's view of its exports; looked up on every option, so exports can come and go. */
export interface NbdExportTable {
  list(): readonly NbdExportEntry[];
  /** The export of this name; '' is the default export (undefined when there is none). */
  lookup(name: string): NbdExportEntry | undefined;
}
