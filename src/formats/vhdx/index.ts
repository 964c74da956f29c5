/**
 * VHDX (MS-VHDX) for the rest of the product. The reader plugs into formats/open.ts (`openVhdx`, an Opener) and
 * the writer into formats/write.ts (`writeVhdx`, a DiskWriter); callers normally use openDisk()/writeDisk().
 *
 * Module map: layout.ts (offsets, GUIDs, every structure declared once), structs.ts (parsers, checked),
 * build.ts (encoders), log.ts (log replay into memory), file-view.ts (the file with the replayed log over it),
 * metadata.ts, bat.ts, layer.ts (one file opened), image.ts (DiskImage: read/extents through the chain),
 * parent.ts (locator, parent identity), reader.ts (the opener), writer.ts (dynamic, fixed, differencing).
 * Locking: none; images are opened read-only and never written, a VhdxImage is used by one caller at a time
 * for reads that may interleave (no shared mutable state but the sector bitmap cache).
 */
export { openVhdx } from './reader.js';
export { writeVhdx, type VhdxBlockSource, type VhdxSourceBlock, type VhdxWriteOptions } from './writer.js';
export { VhdxImage } from './image.js';
