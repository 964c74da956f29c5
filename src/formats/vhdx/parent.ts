/**
 * Finding and checking the parent of a differencing VHDX (MS-VHDX 2.6.2.6). Locator keys used:
 *   parent_linkage (required) / parent_linkage2: the parent's DataWriteGuid ("{GUID}")
 *   relative_path: tried first, relative to the child's folder (backslashes become slashes)
 *   absolute_win32_path, volume_path: tried as Linux paths when they are (after converting backslashes), then by
 *   their file name in the child's folder (a chain copied off its Windows host keeps its files together)
 * The parent must be a VHDX whose DataWriteGuid equals parent_linkage (or parent_linkage2), with the same
 * logical sector size; otherwise SV_ERR_FORMAT_PARENT_MISMATCH names both identities.
 */
import { SvError } from '../../errors/index.js';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import type { DiskImage } from '../types.js';
import { badInput } from '../../errors/bad-input.js';
import { normaliseGuid } from './guid.js';
import type { VhdxLayer } from './layer.js';

export interface ParentLinkage {
  readonly linkage: string;
  readonly linkage2?: string;
  readonly candidates: readonly string[];
}

function unixish(p: string): string {
  return p.replace(/\\/g, '/');
}

export function parentLinkage(layer: VhdxLayer): ParentLinkage {
  const loc = layer.params.parentLocator;
  const path = layer.path;
  if (!loc) throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', path, 'metadata (parent locator item)', 0, 'a parent locator in a differencing disk', 'none');
  const raw = loc.entries.get('parent_linkage');
  const linkage = raw === undefined ? undefined : normaliseGuid(raw);
  if (!linkage) {
    throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', path, 'parent locator parent_linkage', 0, 'a GUID "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}"', raw === undefined ? 'no such key' : JSON.stringify(raw));
  }
  const raw2 = loc.entries.get('parent_linkage2');
  const linkage2 = raw2 === undefined ? undefined : normaliseGuid(raw2);
  const dir = dirname(path);
  const candidates: string[] = [];
  const rel = loc.entries.get('relative_path');
  if (rel) candidates.push(resolve(dir, unixish(rel).replace(/^\.\//, '')));
  const others = ['absolute_win32_path', 'volume_path'].map((k) => loc.entries.get(k)).filter((v): v is string => !!v);
  for (const p of others) {
    const u = unixish(p);
    if (isAbsolute(u) && !u.startsWith('//')) candidates.push(u);
  }
  for (const p of [rel, ...others]) if (p) candidates.push(resolve(dir, basename(unixish(p))));
  if (candidates.length === 0) {
    throw badInput('SV_ERR_VHDX_PARENT_LOCATOR', path, 'parent locator', 0, 'relative_path, absolute_win32_path or volume_path', 'none of them');
  }
  return { linkage, ...(linkage2 ? { linkage2 } : {}), candidates: [...new Set(candidates)] };
}

/** Throws SV_ERR_FORMAT_PARENT_MISMATCH unless `parent` is the image `child` was made from. */
export function verifyParent(child: VhdxLayer, link: ParentLinkage, parent: DiskImage): void {
  const id = parent.info.id ? normaliseGuid(parent.info.id) : undefined;
  const expected = link.linkage2 ? `DataWriteGuid ${link.linkage} (or ${link.linkage2})` : `DataWriteGuid ${link.linkage}`;
  if (parent.info.format !== 'vhdx' || !id || (id !== link.linkage && id !== link.linkage2)) {
    throw new SvError('SV_ERR_FORMAT_PARENT_MISMATCH',
      `${child.path}: parent ${parent.info.path}: expected a VHDX with ${expected}, found ${parent.info.format} with ${id ? `DataWriteGuid ${id}` : 'no identity'}`,
      { path: child.path, parent: parent.info.path, structure: 'parent locator parent_linkage', expected, found: id ?? null });
  }
  if (parent.info.logicalSectorSize !== child.params.logicalSectorSize) {
    throw new SvError('SV_ERR_FORMAT_PARENT_MISMATCH',
      `${child.path}: parent ${parent.info.path}: expected logical sector size ${child.params.logicalSectorSize}, found ${parent.info.logicalSectorSize}`,
      { path: child.path, parent: parent.info.path, structure: 'logical sector size', expected: child.params.logicalSectorSize, found: parent.info.logicalSectorSize });
  }
}
