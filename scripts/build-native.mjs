#!/usr/bin/env node
// Builds the native addon: `napi build --release --platform` in native/ → native/shadowvault.<triple>.node.
//
// Crates come from crates.io, except on machines with Debian's packaged crates
// (/usr/share/cargo/registry/blake3-*, from librust-blake3-dev + librust-zstd-dev): there a cargo config
// replacing crates.io with that directory (offline) is written to a temporary folder and passed as
// `-- --config <file>`. Nothing is written into the checkout except the .node file and native/target/;
// no .cargo/config.toml, no Cargo.lock is kept (a lock made against one registry fails against the other).
// Idempotent: cargo rebuilds only what changed. Prints each command it runs.
// The .node file is written to native/target/napi-out/ and renamed into native/: a process that has the old
// addon loaded keeps its (unlinked) copy instead of seeing a file overwritten under its mappings.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const nativeDir = join(root, 'native');
const debianRegistry = '/usr/share/cargo/registry';

function hasDebianCrates() {
  if (!existsSync(debianRegistry)) return false;
  return readdirSync(debianRegistry).some((name) => name.startsWith('blake3-'));
}

const napiBin = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
if (!existsSync(napiBin)) {
  console.error('build-native: @napi-rs/cli is not installed; run `npm ci` first');
  process.exit(1);
}

const outDir = join(nativeDir, 'target', 'napi-out');
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const args = [
  napiBin, 'build', '--release', '--platform', '--no-js',
  '--package-json-path', join(root, 'package.json'),
  '--config-path', join(nativeDir, 'napi.json'),
  '--output-dir', outDir,
];
let tempDir;
if (hasDebianCrates()) {
  tempDir = mkdtempSync(join(tmpdir(), 'sv-cargo-'));
  const config = join(tempDir, 'debian-registry.toml');
  writeFileSync(
    config,
    ['[source.crates-io]', 'replace-with = "debian"', '', '[source.debian]', `directory = "${debianRegistry}"`, '', '[net]', 'offline = true', ''].join('\n'),
  );
  console.log(`build-native: Debian crates found in ${debianRegistry}; using source replacement ${config}`);
  args.push('--', '--config', config);
} else {
  console.log('build-native: no Debian crates; building against crates.io');
}

console.log(`build-native: (cd native && node ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')})`);
const started = Date.now();
const result = spawnSync(process.execPath, args, { cwd: nativeDir, stdio: 'inherit' });
// Never keep a lock file made against one registry: it fails against the other.
rmSync(join(nativeDir, 'Cargo.lock'), { force: true });
if (tempDir) rmSync(tempDir, { recursive: true, force: true });
if (result.status !== 0) {
  console.error(`build-native: napi build failed (exit ${result.status ?? result.signal})`);
  process.exit(result.status ?? 1);
}
const built = readdirSync(outDir).filter((n) => n.endsWith('.node'));
if (built.length === 0) {
  console.error(`build-native: napi build produced no .node file in ${outDir}`);
  process.exit(1);
}
for (const name of built) renameSync(join(outDir, name), join(nativeDir, name));
console.log(`build-native: done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${built.map((n) => `native/${n}`).join(', ')}`);
