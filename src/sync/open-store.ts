/**
 * openStore: a store folder or an already opened Store, as a Store. Its own module so that readers (point
 * images, restore, verify) do not load the backup engine (sources, pack writer, sync) with it: `files ls` as a
 * new CLI process pays for every module it imports.
 */
import { Store } from '../../storage/store.js';

export async function openStore(store: string | Store, create = false): Promise<Store> {
  return typeof store === 'string' ? Store.open(store, { create }) : store;
}
