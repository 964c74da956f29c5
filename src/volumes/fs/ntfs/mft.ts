/**
 * The Master File Table: record N lives at byte N x recordSize of $MFT's unnamed $DATA, which is located
 * through record 0's own runlist (the MFT may be fragmented; with an $ATTRIBUTE_LIST in record 0 the later
 * extents are found through the first one). Records are read in 64 KiB chunks and parsed records are kept in
 * a bounded LRU: a directory walk touching thousands of neighbouring records reads each chunk once.
 * Memory: at most CHUNKS x 64 KiB of raw MFT plus RECORDS parsed records.
 */
import { badInput } from '../../../errors/bad-input.js';
import type { VolumeReader } from '../types.js';
import type { NtfsGeometry } from './boot.js';
import { Lru } from './lru.js';
import { parseRecord, type MftRecord } from './record.js';
import { checkNoOverlap, findRun, type Run } from './runlist.js';
import { RunHandle } from './stream.js';
import { AT } from './structs.js';

const CHUNK = 64 << 10;
const CHUNKS = 64;
const RECORDS = 4096;

export class Mft {
  readonly vol: VolumeReader;
  readonly geo: NtfsGeometry;
  readonly name: string;
  #runs: readonly Run[] = [];
  #size = 0;
  #data: RunHandle | undefined;
  readonly #chunks = new Lru<number, Buffer>(CHUNKS);
  readonly #records = new Lru<number, MftRecord>(RECORDS);

  private constructor(vol: VolumeReader, geo: NtfsGeometry, name: string) {
    this.vol = vol;
    this.geo = geo;
    this.name = name;
  }

  /** Bootstrap from record 0 at the boot sector's MFT cluster. */
  static async open(vol: VolumeReader, geo: NtfsGeometry, name: string): Promise<Mft> {
    const mft = new Mft(vol, geo, name);
    const at = geo.mftLcn * geo.clusterSize;
    if (at + geo.recordSize > vol.size) throw badInput('SV_ERR_FS_NTFS_BAD_BOOT', name, 'NTFS boot sector MFT cluster', 0x30, 'an MFT inside the volume', geo.mftLcn);
    const rec0 = parseRecord(name, geo, 0, await vol.read(at, geo.recordSize), at);
    const data = rec0.attributes.find((a) => a.type === AT.DATA && a.name === '' && a.nonResident?.startVcn === 0);
    if (!data?.nonResident) throw badInput('SV_ERR_FS_NTFS_BAD_ATTRIBUTE', name, 'MFT record 0 (the MFT) $DATA', at, 'a non-resident unnamed $DATA starting at VCN 0', 'none');
    mft.#setData(data.nonResident.runs, data.nonResident.dataSize, data.nonResident.initializedSize);
    return mft;
  }

  /** Replace the MFT's runs once the full $DATA (every extent) is known. */
  setFullRuns(runs: readonly Run[], size: number, initialized: number): void {
    this.#setData(runs, size, initialized);
    this.#chunks.clear();
  }

  #setData(runs: readonly Run[], size: number, initialized: number): void {
    checkNoOverlap(runs, this.name, 'MFT record 0 $DATA');
    if (size < this.geo.recordSize * 16) throw badInput('SV_ERR_FS_NTFS_BAD_ATTRIBUTE', this.name, 'MFT $DATA size', this.geo.mftLcn * this.geo.clusterSize, `>= 16 records`, size);
    this.#runs = runs;
    this.#size = size;
    this.#data = new RunHandle({ vol: this.vol, name: this.name, clusterSize: this.geo.clusterSize, structure: 'MFT $DATA' }, runs, size, initialized);
  }

  get recordCount(): number {
    return Math.floor(this.#size / this.geo.recordSize);
  }

  /** Byte offset in the volume of MFT byte `offset` (for messages); -1 when unmapped or sparse. */
  volumeOffset(offset: number): number {
    const cs = this.geo.clusterSize;
    const i = findRun(this.#runs, Math.floor(offset / cs));
    const run = i < 0 ? undefined : this.#runs[i]!;
    return run?.lcn == null ? -1 : run.lcn * cs + (offset - run.vcn * cs);
  }

  async record(number: number): Promise<MftRecord> {
    const cached = this.#records.get(number);
    if (cached) return cached;
    if (!Number.isSafeInteger(number) || number < 0 || number >= this.recordCount) {
      throw badInput('SV_ERR_FS_NTFS_BAD_RECORD', this.name, 'MFT record number', -1, `< ${this.recordCount} (records in the MFT)`, number);
    }
    const offset = number * this.geo.recordSize;
    // allocUnsafe: every byte is copied over below (pooled, no zero fill: a listing parses thousands of records).
    const buf = Buffer.allocUnsafe(this.geo.recordSize);
    for (let pos = offset; pos < offset + buf.length;) {
      const chunkNo = Math.floor(pos / CHUNK);
      const chunk = await this.#chunk(chunkNo);
      const from = pos - chunkNo * CHUNK;
      const n = Math.min(chunk.length - from, offset + buf.length - pos);
      chunk.copy(buf, pos - offset, from, from + n);
      pos += n;
    }
    const rec = parseRecord(this.name, this.geo, number, buf, this.volumeOffset(offset));
    this.#records.set(number, rec);
    return rec;
  }

  async #chunk(n: number): Promise<Buffer> {
    let c = this.#chunks.get(n);
    if (!c) {
      c = await this.#data!.read(n * CHUNK, CHUNK);
      this.#chunks.set(n, c);
    }
    return c;
  }
}
