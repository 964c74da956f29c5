/**
 * Finds and loads the native addon once per thread (each worker thread loads its own instance).
 *
 * Where: `SHADOWVAULT_NATIVE_ADDON` (a path) when set, else `native/shadowvault.<platform>-<arch>[-abi].node`
 * in the checkout, the name `napi build --platform` gives it (e.g. shadowvault.linux-x64-gnu.node).
 * A missing file is SV_ERR_NATIVE_NOT_BUILT naming `npm run build:native`; a file that does not load
 * (other platform, other ABI) is SV_ERR_NATIVE_LOAD_FAILED; an addon whose constants disagree with
 * ./types.ts (stale build) is SV_ERR_NATIVE_LOAD_FAILED too.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SvError } from '../errors/index.js';
import { BLOCK_FLAG, DIGEST_LENGTH, type NativeAddon } from './types.js';

/** native/ in the checkout: this file is build/src/native/load.js once compiled. */
export const NATIVE_DIR = fileURLToPath(new URL('../../../native/', import.meta.url));

function addonPath(): string {
  const override = process.env.SHADOWVAULT_NATIVE_ADDON;
  if (override) return override;
  const prefix = `shadowvault.${process.platform}-${process.arch}`;
  const found = existsSync(NATIVE_DIR) ? readdirSync(NATIVE_DIR).filter((n) => n.startsWith(prefix) && n.endsWith('.node')) : [];
  // Prefer the glibc build when both exist; otherwise whatever napi named it.
  found.sort((a, b) => Number(b.includes('-gnu')) - Number(a.includes('-gnu')));
  return join(NATIVE_DIR, found[0] ?? `${prefix}-gnu.node`);
}

function checkApi(addon: NativeAddon, path: string): void {
  const fns = ['packBlocks', 'unpackBlock', 'unpackBlockInto', 'hash', 'isZero'] as const;
  if (typeof addon !== 'object' || addon === null || fns.some((f) => typeof addon[f] !== 'function') || typeof addon.constants !== 'object') {
    throw new SvError('SV_ERR_NATIVE_LOAD_FAILED', `${path} is not the shadowvault addon (no ${fns.join('/')} exports); run \`npm run build:native\``, { path });
  }
  const c = addon.constants;
  const ok =
    c.FLAG_ZERO === BLOCK_FLAG.ZERO && c.FLAG_RAW === BLOCK_FLAG.RAW && c.FLAG_ZSTD === BLOCK_FLAG.ZSTD && c.DIGEST_LENGTH === DIGEST_LENGTH;
  if (!ok) {
    throw new SvError('SV_ERR_NATIVE_LOAD_FAILED', `native addon ${path} disagrees with src/native/types.ts (stale build?); run \`npm run build:native\``, {
      path,
      constants: { ...c },
    });
  }
}

let loaded: NativeAddon | undefined;

/** The addon, loaded on first use. Throws SV_ERR_NATIVE_NOT_BUILT / SV_ERR_NATIVE_LOAD_FAILED. */
export function loadNative(): NativeAddon {
  if (loaded) return loaded;
  const path = addonPath();
  if (!existsSync(path)) {
    throw new SvError('SV_ERR_NATIVE_NOT_BUILT', `native addon not found at ${path}: run \`npm run build:native\` (or \`npm run setup\`)`, { path });
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    throw new SvError('SV_ERR_NATIVE_LOAD_FAILED', `native addon ${path} could not be loaded: ${text}; rebuild with \`npm run build:native\``, { path }, { cause: err });
  }
  checkApi(addon, path);
  loaded = addon;
  return addon;
}
