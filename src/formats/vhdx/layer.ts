/**
 * Opening one VHDX file (no parent): file identifier, the current header, log replay, region table, metadata
 * and BAT, in the order MS-VHDX prescribes (the log is replayed before the region table, metadata and BAT are
 * read, so they are seen as the log leaves them). Read-only: the file is opened with O_RDONLY and the replayed
 * log lives in memory (file-view.ts).
 *
 * Header choice: both headers are checked (signature, CRC-32C, version); the valid one with the higher
 * sequence number is current. Region table: the first valid copy. Every problem names file, structure, offset.
 */
import { SvError } from '../../errors/index.js';
import type { ImageFile } from '../file.js';
import { Bat, loadBat, type Reserved } from './bat.js';
import { badInput } from '../../errors/bad-input.js';
import { FileView } from './file-view.js';
import {
  FILE_IDENTIFIER, FILE_IDENTIFIER_OFFSET, GUIDS, HEADER, HEADER_OFFSETS, REGION_TABLE_OFFSETS, REGION_TABLE_SIZE, SIG_FILE,
} from './layout.js';
import { replayLog, type ReplayResult } from './log.js';
import { readMetadata, type VhdxParams } from './metadata.js';
import { parseFileIdentifier, parseHeader, parseRegionTable, type RegionEntry, type VhdxHeader } from './structs.js';

export interface VhdxLayer {
  readonly path: string;
  readonly file: ImageFile;
  readonly view: FileView;
  readonly creator: string;
  readonly header: VhdxHeader;
  /** 0 or 1: which header is current. */
  readonly headerIndex: number;
  readonly regions: readonly RegionEntry[];
  readonly params: VhdxParams;
  readonly bat: Bat;
  readonly replay: ReplayResult | null;
}

const MIN_FILE = REGION_TABLE_OFFSETS[1] + REGION_TABLE_SIZE;

export async function openVhdxLayer(file: ImageFile): Promise<VhdxLayer> {
  const path = file.path;
  if (file.size < SIG_FILE.length) {
    throw badInput('SV_ERR_VHDX_SIGNATURE', path, FILE_IDENTIFIER.name, 0, `"${SIG_FILE}"`, `a file of ${file.size} bytes`);
  }
  if (file.size < MIN_FILE) {
    // The signature first: a short file that is no VHDX at all says so, a cut-off VHDX says truncated.
    parseFileIdentifier(Buffer.concat([await file.readAt(0, SIG_FILE.length, FILE_IDENTIFIER.name), Buffer.alloc(FILE_IDENTIFIER.size - SIG_FILE.length)]), { path, offset: 0 });
    throw badInput('SV_ERR_FORMAT_TRUNCATED', path, 'VHDX header section (file identifier, headers, region tables)', 0, `at least ${MIN_FILE} bytes`, `${file.size} bytes`);
  }
  const { creator } = parseFileIdentifier(await file.readAt(FILE_IDENTIFIER_OFFSET, FILE_IDENTIFIER.size, FILE_IDENTIFIER.name), { path, offset: 0 });

  const checked = await Promise.all(HEADER_OFFSETS.map(async (offset) => parseHeader(await file.readAt(offset, HEADER.size, `header at ${offset}`), { path, offset })));
  let headerIndex = -1;
  let header: VhdxHeader | undefined;
  checked.forEach((c, i) => {
    if (c.ok && (!header || c.value.sequenceNumber > header.sequenceNumber)) {
      header = c.value;
      headerIndex = i;
    }
  });
  if (!header) {
    const problems = checked.flatMap((c) => (c.ok ? [] : [c.problem]));
    const first = problems[0]!;
    // Both copies bad the same way (e.g. both CRCs): that code; otherwise "no valid header".
    const code = problems.every((p) => p.code === first.code) ? first.code : 'SV_ERR_VHDX_NO_VALID_HEADER';
    throw new SvError(code, `${path}: no valid VHDX header: ${problems.map((p) => p.message.replace(`${path}: `, '')).join('; ')}`, {
      ...first.details, problems: problems.map((p) => p.message),
    }, { cause: first });
  }

  const replay = await replayLog(file, header, HEADER_OFFSETS[headerIndex]!);
  const view = new FileView(file, replay?.segments ?? [], replay?.logicalSize ?? file.size);

  const tables = await Promise.all(REGION_TABLE_OFFSETS.map(async (offset) => parseRegionTable(await view.read(offset, REGION_TABLE_SIZE, `region table at ${offset}`), { path, offset })));
  let regions: readonly RegionEntry[] | undefined;
  for (const t of tables) if (!regions && t.ok) regions = t.value;
  if (!regions) {
    const problems = tables.flatMap((t) => (t.ok ? [] : [t.problem]));
    const first = problems[0]!;
    throw new SvError(first.code, `${first.message} (and the second copy: ${problems[1]?.message.replace(`${path}: `, '') ?? '?'})`,
      first.details, { cause: first });
  }
  for (const r of regions) {
    if (r.required && r.guid !== GUIDS.batRegion && r.guid !== GUIDS.metadataRegion) {
      throw badInput('SV_ERR_VHDX_UNSUPPORTED', path, `region ${r.guid} (marked required)`, REGION_TABLE_OFFSETS[0], 'only the BAT and metadata regions required', 'an unknown required region');
    }
    if (r.fileOffset + r.length > view.size) {
      throw badInput('SV_ERR_FORMAT_TRUNCATED', path, `region ${r.guid === GUIDS.batRegion ? 'BAT' : r.guid === GUIDS.metadataRegion ? 'metadata' : r.guid}`, r.fileOffset,
        `${r.length} bytes inside the file`, `file size ${view.size}`);
    }
  }
  const batRegion = regions.find((r) => r.guid === GUIDS.batRegion);
  const metaRegion = regions.find((r) => r.guid === GUIDS.metadataRegion);
  if (!batRegion || !metaRegion) {
    throw badInput('SV_ERR_VHDX_REGION_TABLE', path, 'region table', REGION_TABLE_OFFSETS[0], 'a BAT region and a metadata region', `${batRegion ? '' : 'no BAT region '}${metaRegion ? '' : 'no metadata region'}`.trim());
  }
  const params = await readMetadata(view, metaRegion.fileOffset, metaRegion.length);
  const reserved: Reserved[] = [
    { name: 'the BAT region', start: batRegion.fileOffset, length: batRegion.length },
    { name: 'the metadata region', start: metaRegion.fileOffset, length: metaRegion.length },
  ];
  if (header.logLength > 0) reserved.push({ name: 'the log', start: header.logOffset, length: header.logLength });
  const bat = await loadBat(view, batRegion.fileOffset, batRegion.length, params, reserved);
  return { path, file, view, creator, header, headerIndex, regions, params, bat, replay };
}
