/**
 * Name escaping (src/files/names.ts), seeded fuzz: any string a file system can hand us (random code units:
 * '/', NUL, controls, '%', lone surrogates, device names, thousands of characters) escapes to ONE safe path
 * component (no '/', no NUL, not "." or "..", not empty, at most 255 UTF-8 bytes, no Windows device name), and
 * decodes back to itself unless it had to be shortened; distinct names give distinct escaped names. Plus the
 * documented examples, the glob patterns of `find`, and the volume signatures behind SV_ERR_VOLUME_UNSUPPORTED.
 */
import t from 'tap';
import { globToRegExp } from '../../src/files/find.js';
import { decodeName, escapeName, NAME_MAX_BYTES } from '../../src/files/names.js';
import { openFileSystem } from '../../src/volumes/fs/probe.js';
import { identifyVolume, IDENTIFY_BYTES } from '../../src/volumes/fs/signatures.js';
import { seeded } from '../formats/disk-image-contract.js';

const DEVICE = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\.|$)/i;
const ALPHABET = ['/', '\0', '%', '.', '\\', ':', '\n', '\x7f', 'a', 'Z', 'é', '中', '\ud83d\ude00', '\ud800', '\udc00', ' ', '~', 'C', 'O', 'N', '1', 'u', 'F'];

t.test('documented examples', async (t) => {
  const cases: Array<[string, string]> = [
    ['plain name.txt', 'plain name.txt'], ['a/b', 'a%2Fb'], ['x\0y', 'x%00y'], ['100%', '100%25'], ['.', '%2E'], ['..', '%2E%2E'],
    ['...', '...'], ['CON', '%43ON'], ['con.txt', '%63on.txt'], ['COM1.log', '%43OM1.log'], ['CONSOLE', 'CONSOLE'], ['a\\b', 'a%5Cb'],
    ['tab\there', 'tab%09here'], ['\ud800x', '%uD800x'], ['', '%'], ['日本語.txt', '日本語.txt'],
  ];
  for (const [name, esc] of cases) {
    t.equal(escapeName(name).name, esc, JSON.stringify(name));
    t.equal(decodeName(esc), name, `${esc} decodes`);
  }
});

t.test('seeded fuzz: one safe component, reversible, injective', async (t) => {
  const rnd = seeded(20261202);
  const seen = new Map<string, string>();
  let bad = 0;
  let shortened = 0;
  for (let i = 0; i < 20_000; i++) {
    const len = i % 50 === 0 ? 200 + Math.floor(rnd() * 600) : Math.floor(rnd() * 12);
    let name = '';
    for (let j = 0; j < len; j++) name += ALPHABET[Math.floor(rnd() * ALPHABET.length)]!;
    if (i % 97 === 0) name = ['CON', 'nul.txt', 'Lpt9', 'AUX.tar.gz'][i % 4]!;
    const e = escapeName(name);
    const n = e.name;
    const safe = n !== '' && n !== '.' && n !== '..' && !n.includes('/') && !n.includes('\0') && Buffer.byteLength(n) <= NAME_MAX_BYTES && !DEVICE.test(n)
      && !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(n);
    if (!safe) bad++;
    if (e.shortened) shortened++;
    else if (decodeName(n) !== name) bad++;
    const other = seen.get(n);
    if (other !== undefined && other !== name) bad++;
    seen.set(n, name);
  }
  t.equal(bad, 0, 'every escaped name is safe, decodes back (unless shortened) and names one original');
  t.ok(shortened > 0, `long names were shortened (${shortened})`);
});

t.test('find patterns', async (t) => {
  t.ok(globToRegExp('*.txt', true).test('a.txt'));
  t.notOk(globToRegExp('*.txt', true).test('a.TXT'));
  t.ok(globToRegExp('*.txt', false).test('a.TXT'));
  t.ok(globToRegExp('note-[0-4]?.txt', true).test('note-17.txt'));
  t.notOk(globToRegExp('note-[!0-4]?.txt', true).test('note-17.txt'));
  t.ok(globToRegExp('/a/**/z', true).test('/a/b/c/z'));
  t.notOk(globToRegExp('/a/*/z', true).test('/a/b/c/z'));
  t.ok(globToRegExp('a(b)+c.$', true).test('a(b)+c.$'), 'regex characters are literal');
  t.ok(globToRegExp('[', true).test('['), 'an unclosed set is literal');
});

t.test('volume signatures', async (t) => {
  const vol = (patch: (b: Buffer) => void) => {
    const b = Buffer.alloc(IDENTIFY_BYTES);
    patch(b);
    return b;
  };
  const cases: Array<[string, (b: Buffer) => void]> = [
    ['LVM2 physical volume', (b) => { b.write('LABELONE', 512, 'latin1'); b.write('LVM2 001', 536, 'latin1'); }],
    ['XFS file system', (b) => b.write('XFSB', 0, 'latin1')],
    ['ReFS file system', (b) => b.write('ReFS\0\0\0\0', 3, 'latin1')],
    ['btrfs file system', (b) => b.write('_BHRfS_M', 65600, 'latin1')],
    ['LUKS encrypted volume', (b) => b.write('LUKS\xba\xbe', 0, 'latin1')],
    ['Linux swap', (b) => b.write('SWAPSPACE2', 4086, 'latin1')],
    ['BitLocker encrypted volume', (b) => b.write('-FVE-FS-', 3, 'latin1')],
    ['exFAT file system', (b) => b.write('EXFAT   ', 3, 'latin1')],
  ];
  for (const [what, patch] of cases) {
    const buf = vol(patch);
    t.equal(identifyVolume(buf), what);
    await t.rejects(openFileSystem({ size: buf.length, read: async (o, l) => buf.subarray(o, o + l) }, { name: 'test volume' }), {
      code: 'SV_ERR_VOLUME_UNSUPPORTED', message: new RegExp(`^test volume: ${what}: not supported yet`),
    }, `${what}: a coded error naming it`);
  }
  t.match(identifyVolume(Buffer.alloc(4096)), /all zero/);
  const rnd = seeded(5);
  const noise = Buffer.alloc(IDENTIFY_BYTES);
  for (let i = 0; i < noise.length; i++) noise[i] = (rnd() * 256) | 0;
  await t.rejects(openFileSystem({ size: noise.length, read: async (o, l) => noise.subarray(o, o + l) }), { code: 'SV_ERR_VOLUME_UNSUPPORTED', message: /no known file system \(first bytes [0-9a-f]{32}\)/ });
  const tiny = Buffer.from('XFSB');
  await t.rejects(openFileSystem({ size: 4, read: async (o, l) => tiny.subarray(o, o + l) }), { code: 'SV_ERR_VOLUME_UNSUPPORTED', message: /XFS/ }, 'a volume smaller than the probe window');
});
