/**
 * repair's report per recovery point: walk each point's trees through the rebuilt index and say whether every
 * page and block it names is there (intact), there only thanks to the rebuild (recovered: the old index lacked
 * it or pointed at a damaged record), or missing (lost: the packs hold no good copy; a backup or consistency
 * check of the source writes the data again). A point whose manifest is damaged is reported as such.
 *
 * Reads pages through the new index (each page digest-checked as read); blocks are looked up, not read: repair
 * already decoded and digest-checked every record it indexed. Cost: every point's distinct pages, per point.
 */
import type { WireError } from '../src/errors/index.js';
import type { BackendRef } from './backend/types.js';
import { BlobReader } from './blobs.js';
import { isZeroDigest } from './codec.js';
import type { BlobIndex } from './index.js';
import { DIGEST_SIZE } from './layout.js';
import type { Store } from './store.js';
import { diskShape, walkTree } from './walk.js';

export interface PointRepair {
  /** `source@id` */
  readonly point: string;
  readonly status: 'intact' | 'recovered' | 'lost' | 'damaged';
  readonly pagesMissing: number;
  readonly blocksMissing: number;
  /** Pages and blocks found through the rebuilt index only. */
  readonly blobsRecovered: number;
  /** The manifest's error (status damaged) or the first missing blob's. */
  readonly error?: WireError;
}

function moved(old: BlobIndex, fresh: BlobIndex, digest: Uint8Array): boolean {
  const a = old.lookup(digest);
  const b = fresh.lookup(digest);
  return !a || !b || a.packId !== b.packId || a.offset !== b.offset;
}

export async function reportPoints(store: Store, old: BlobIndex, fresh: BlobIndex, ref: BackendRef): Promise<PointRepair[]> {
  const out: PointRepair[] = [];
  const reader = new BlobReader(ref, fresh);
  try {
    for (const source of await store.listSources()) {
      const { points, damaged } = await store.scanPoints(source);
      for (const d of damaged) out.push({ point: `${source}@${d.id}`, status: 'damaged', pagesMissing: 0, blocksMissing: 0, blobsRecovered: 0, error: d.error });
      for (const m of points) {
        let pagesMissing = 0;
        let blocksMissing = 0;
        let blobsRecovered = 0;
        let error: WireError | undefined;
        const seen = new Set<string>();
        for (const d of m.disks) {
          await walkTree(reader.readPage, diskShape(m, d), Buffer.from(d.root, 'hex'), {
            page: (digest) => {
              const hex = digest.toString('hex');
              if (seen.has(hex)) return false;
              seen.add(hex);
              if (fresh.has(digest) && moved(old, fresh, digest)) blobsRecovered++;
              return true;
            },
            leaf: (page) => {
              for (let o = 0; o < page.length; o += DIGEST_SIZE) {
                if (isZeroDigest(page, o)) continue;
                const dg = page.subarray(o, o + DIGEST_SIZE);
                if (!fresh.has(dg)) {
                  blocksMissing++;
                  error ??= { code: 'SV_ERR_STORE_MISSING_BLOB', message: `block ${dg.toString('hex')} has no good copy in the packs` };
                } else if (moved(old, fresh, dg)) blobsRecovered++;
              }
            },
            pageError: (digest, _level, err) => {
              pagesMissing++;
              error ??= { code: String((err as { code?: unknown }).code ?? 'SV_ERR_CORE_INTERNAL'), message: `page ${digest.toString('hex')}: ${(err as Error).message}` };
            },
          });
        }
        const status = pagesMissing || blocksMissing ? 'lost' : blobsRecovered ? 'recovered' : 'intact';
        out.push({ point: `${m.source}@${m.id}`, status, pagesMissing, blocksMissing, blobsRecovered, ...(error ? { error } : {}) });
      }
    }
  } finally {
    reader.close();
  }
  return out;
}
