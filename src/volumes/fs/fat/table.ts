/**
 * The file allocation table: entry lookup (12-bit packed, 16-bit, 28-bit) through a cache of 32 KiB FAT
 * windows, and cluster-chain walks. A walk checks every link (2..maxCluster, never free or bad), detects a
 * chain that comes back on itself (Brent's cycle detection: constant memory, SV_ERR_FS_FAT_LOOP), and can never
 * take more than maxCluster steps. A chain is returned as runs of consecutive clusters, so a contiguous file
 * costs one run whatever its length.
 */
import { SvError } from '../../../errors/index.js';
import { badInput } from '../../../errors/bad-input.js';
import { BlockCache } from '../block-cache.js';
import type { VolumeReader } from '../types.js';
import type { FatGeometry } from './bpb.js';

const WINDOW = 32 * 1024;

export interface ClusterRun {
  readonly first: number;
  readonly count: number;
}

export class FatTable {
  readonly #geo: FatGeometry;
  readonly #windows: BlockCache;

  constructor(volume: VolumeReader, geo: FatGeometry) {
    this.#geo = geo;
    const fatView: VolumeReader = { size: geo.fatBytes, read: (at, len) => volume.read(geo.fatOffset + at, len) };
    this.#windows = new BlockCache(fatView, WINDOW, 64);
  }

  async #byte(at: number): Promise<number> {
    const w = await this.#windows.read(Math.floor(at / WINDOW));
    return w[at % WINDOW]!;
  }

  /** The raw FAT entry of `cluster` (masked to 12/16/28 bits). */
  async entry(cluster: number): Promise<number> {
    switch (this.#geo.type) {
      case 'fat12': {
        const at = cluster + (cluster >> 1);
        const v = (await this.#byte(at)) | ((await this.#byte(at + 1)) << 8);
        return cluster & 1 ? v >> 4 : v & 0xfff;
      }
      case 'fat16': {
        const at = cluster * 2;
        return (await this.#byte(at)) | ((await this.#byte(at + 1)) << 8);
      }
      case 'fat32': {
        const at = cluster * 4;
        const w = await this.#windows.read(Math.floor(at / WINDOW));
        return w.readUInt32LE(at % WINDOW) & 0x0fffffff;
      }
    }
  }

  isEnd(v: number): boolean {
    return v >= (this.#geo.type === 'fat12' ? 0xff8 : this.#geo.type === 'fat16' ? 0xfff8 : 0x0ffffff8);
  }

  #entryOffset(cluster: number): number {
    const g = this.#geo;
    return g.fatOffset + (g.type === 'fat12' ? cluster + (cluster >> 1) : g.type === 'fat16' ? cluster * 2 : cluster * 4);
  }

  /**
   * The chain starting at `first`, as runs of consecutive clusters, up to its end-of-chain mark or `maxClusters`
   * clusters (callers that know the size stop there). `what` names the owner in errors.
   */
  async chain(first: number, what: string, maxClusters = Infinity): Promise<ClusterRun[]> {
    const g = this.#geo;
    const inRange = (c: number) => c >= 2 && c <= g.maxCluster;
    if (!inRange(first)) throw badInput('SV_ERR_FS_FAT_CORRUPT', g.name, `${what} first cluster`, 0, `2..${g.maxCluster}`, first);
    const runs: ClusterRun[] = [];
    let runFirst = first;
    let runCount = 1;
    let cur = first;
    let steps = 1;
    // Brent: `tortoise` jumps to the current cluster at each power of two; meeting it again means a cycle.
    let tortoise = first;
    let power = 1;
    let lam = 0;
    while (steps < maxClusters) {
      const next = await this.entry(cur);
      if (this.isEnd(next)) break;
      if (!inRange(next)) {
        throw badInput('SV_ERR_FS_FAT_CORRUPT', g.name, `${what} FAT entry of cluster ${cur}`, this.#entryOffset(cur),
          `a cluster in 2..${g.maxCluster} or end of chain`, next === 0 ? 'free (0)' : `0x${next.toString(16)}`);
      }
      lam++;
      if (next === tortoise || steps > g.maxCluster) {
        throw new SvError('SV_ERR_FS_FAT_LOOP', `${g.name}: ${what}: the cluster chain from ${first} comes back to cluster ${next} (FAT entry of cluster ${cur})`,
          { structure: 'FAT chain', offset: this.#entryOffset(cur), first, found: next });
      }
      if (lam === power) {
        tortoise = next;
        power *= 2;
        lam = 0;
      }
      if (next === runFirst + runCount) runCount++;
      else {
        runs.push({ first: runFirst, count: runCount });
        runFirst = next;
        runCount = 1;
      }
      cur = next;
      steps++;
    }
    runs.push({ first: runFirst, count: runCount });
    return runs;
  }
}
