/**
 * Why change tracking fell back (digest comparison at the source, or a full copy): a fixed set of codes, so
 * that the point's record (`tracking.fallback`), `points --json`, `vms --json` and the metric's label agree.
 * The hypervisor drivers give a free-text reason (src/hypervisor/driver.ts ChangeAnswer.reason); it is mapped
 * onto the set here, first match wins, so a driver never has to know the codes.
 *
 *   storage-migrated     the disk now reads another file (a mirror to new storage, on this host or on the way to
 *                        another host: a mirror carries no dirty bitmap)
 *   bitmap-inconsistent  an unclean shutdown left the bitmap untrustworthy
 *   bitmap-missing       the bitmap the previous point named is gone (QEMU restarted with a raw disk, removed)
 *   disk-changed         the disk was replaced, resized or added
 *   no-previous          nothing to compare with (first point)
 *   unsupported          the disk cannot be tracked
 *   other                anything else (the free text says what)
 */
export const FALLBACK_REASONS = ['storage-migrated', 'bitmap-missing', 'bitmap-inconsistent', 'disk-changed', 'no-previous', 'unsupported', 'other'] as const;
export type FallbackReason = (typeof FALLBACK_REASONS)[number];

/** A tracking record's free-text reason → one of FALLBACK_REASONS (first match wins). */
export function fallbackReason(text: string | undefined): FallbackReason {
  const t = (text ?? '').toLowerCase();
  if (/storage migrat|storage moved|mirror/.test(t)) return 'storage-migrated';
  if (/inconsistent|unclean|corrupt|not trusted/.test(t)) return 'bitmap-inconsistent';
  if (/missing|not found|deleted|gone|absent|lost|no bitmap/.test(t)) return 'bitmap-missing';
  if (/resiz|size changed|replaced|identity|disk added|added to the source|new disk/.test(t)) return 'disk-changed';
  if (/first|no previous|no earlier|no reference|never backed up/.test(t)) return 'no-previous';
  if (/unsupported|not supported|cannot be tracked|no tracking|disabled|raw disk/.test(t)) return 'unsupported';
  return 'other';
}
