/**
 * The local state folder of a store on object storage (storage/state-dir.ts): where it is by default, what
 * names a store, and the refusal of a folder that belongs to another store. No S3 server needed.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseStoreUrl } from '../../storage/backend/open.js';
import { claimStateDir, defaultStateDir, storeIdentity } from '../../storage/state-dir.js';
import { expectCode } from './backend-s3-checks.js';
import { tempDir } from '../helpers/env.js';

const a = parseStoreUrl('s3://backups/site-a?endpoint=http://10.0.0.5:7480');

t.test('default place: $SHADOWVAULT_STATE_DIR, else XDG_STATE_HOME or ~/.local/state, per store', async (t) => {
  t.equal(defaultStateDir(a, { SHADOWVAULT_STATE_DIR: '/srv/sv-state', HOME: '/home/u' }), '/srv/sv-state');
  t.match(defaultStateDir(a, { XDG_STATE_HOME: '/x/state' }), /^\/x\/state\/shadowvault\/stores\/backups-[0-9a-f]{16}$/u);
  t.match(defaultStateDir(a, { HOME: '/home/u' }), /^\/home\/u\/\.local\/state\/shadowvault\/stores\/backups-[0-9a-f]{16}$/u);
  const same = parseStoreUrl('s3://backups/site-a/?endpoint=http://10.0.0.5:7480&rate=50&lock=COMPLIANCE:7&readOnly=1');
  t.equal(defaultStateDir(same, { HOME: '/h' }), defaultStateDir(a, { HOME: '/h' }), 'rate, lock and readOnly do not change which store it is');
  for (const other of ['s3://backups/site-b?endpoint=http://10.0.0.5:7480', 's3://backups/site-a?endpoint=http://10.0.0.6:7480', 's3://backups/site-a?region=eu-west-1']) {
    t.not(defaultStateDir(parseStoreUrl(other), { HOME: '/h' }), defaultStateDir(a, { HOME: '/h' }), `${other} is another store`);
  }
  t.equal(storeIdentity(a), 's3:http://10.0.0.5:7480/backups/site-a/');
});

t.test('a state folder records its store and refuses another', async (t) => {
  const dir = join(tempDir(t), 'state');
  await claimStateDir(dir, a);
  await claimStateDir(dir, parseStoreUrl('s3://backups/site-a?endpoint=http://10.0.0.5:7480&rate=5'));
  t.match(JSON.parse(readFileSync(join(dir, 'store-identity.json'), 'utf8')), { identity: storeIdentity(a), location: 's3://backups/site-a/' });
  const err = await expectCode(t, claimStateDir(dir, parseStoreUrl('s3://backups/site-b?endpoint=http://10.0.0.5:7480')), 'SV_ERR_STORE_STATE_DIR_MISMATCH', 'another store');
  t.match((err as Error).message, /belongs to store s3:\/\/backups\/site-a\/, not s3:\/\/backups\/site-b\//u);
  writeFileSync(join(dir, 'store-identity.json'), '{"identity": tru');
  await claimStateDir(dir, a);
  t.match(JSON.parse(readFileSync(join(dir, 'store-identity.json'), 'utf8')), { identity: storeIdentity(a) }, 'a damaged record is written again by the store that opens it');
});
