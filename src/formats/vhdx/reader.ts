/**
 * The VHDX opener plugged into src/formats/open.ts: open one file (layer.ts), then its parent chain through
 * the shared chain walker (which detects cycles, depth and missing files), checking each parent's identity.
 */
import type { ImageFile } from '../file.js';
import type { OpenContext } from '../open.js';
import type { DiskImage } from '../types.js';
import { VhdxImage } from './image.js';
import { openVhdxLayer } from './layer.js';
import { parentLinkage, verifyParent } from './parent.js';

export async function openVhdx(file: ImageFile, ctx: OpenContext): Promise<DiskImage> {
  try {
    const layer = await openVhdxLayer(file);
    if (!layer.params.hasParent) return new VhdxImage(layer);
    const link = parentLinkage(layer);
    const parent = await ctx.openParent(file.path, link.candidates, (p) => verifyParent(layer, link, p));
    return new VhdxImage(layer, parent);
  } catch (err) {
    await file.close();
    throw err;
  }
}
