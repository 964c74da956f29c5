/**
 * Benchmark data, deterministic (seeded): random bytes, all-zero bytes (pages touched, not the kernel's
 * shared zero page), and text-like bytes: log lines with timestamps, levels, words drawn from a skewed
 * vocabulary, ids, sizes and durations (compresses ~3-4x at zstd -1, like real logs, not a repeated pattern).
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

/** mulberry32: a small seeded PRNG, good enough for synthetic data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VOCABULARY = (
  'the a an of to in for on with by from at as is was be are were has have had not no all any each ' +
  'backup restore verify volume block chunk disk image virtual machine guest host snapshot checkpoint ' +
  'replica sync job queue worker thread pool task request response client server session token user ' +
  'index store prune merge write read flush fsync rename commit rollback retry timeout deadline cancel ' +
  'started finished failed succeeded skipped queued running waiting blocked resumed paused stopped ' +
  'checksum digest compress decompress encrypt decrypt upload download transfer network socket ' +
  'connection handshake certificate expired renewed accepted rejected denied granted allowed limit ' +
  'memory cpu load latency throughput bandwidth bytes blocks files entries records rows pages segments ' +
  'error warning notice info debug trace fatal critical alert degraded healthy unhealthy recovered ' +
  'vhdx vhd qcow2 raw ntfs ext4 partition sector cluster extent bitmap header footer table metadata ' +
  'scheduler retention policy daily weekly monthly hourly window start end next previous current ' +
  'database table column query transaction lock unlock deadlock wait commit abort version schema'
).split(' ');

const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'DEBUG', 'WARN', 'ERROR'];
const SERVICES = ['sv-agent', 'sv-store', 'sv-sync', 'sv-api', 'kernel', 'sshd', 'systemd', 'qemu-kvm', 'vmms', 'cron'];

/** Words by a skewed (Zipf-like) distribution: frequent words dominate, rare ones still appear. */
function word(rand: () => number): string {
  const r = rand();
  return VOCABULARY[Math.floor(r * r * r * VOCABULARY.length)]!;
}

/** `size` bytes of text-like log data. */
export function textLike(size: number, seed = 1): Buffer {
  const rand = prng(seed);
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  let time = Date.UTC(2026, 10, 24, 0, 0, 0);
  while (pos < size) {
    time += Math.floor(rand() * 2500);
    const level = LEVELS[Math.floor(rand() * LEVELS.length)]!;
    const service = SERVICES[Math.floor(rand() * SERVICES.length)]!;
    const words: string[] = [];
    const n = 4 + Math.floor(rand() * 14);
    for (let i = 0; i < n; i++) words.push(word(rand));
    let line = `${new Date(time).toISOString()} host-${Math.floor(rand() * 12)} ${service}[${1000 + Math.floor(rand() * 30000)}]: ${level} ${words.join(' ')}`;
    const extras = Math.floor(rand() * 4);
    for (let i = 0; i < extras; i++) {
      const kind = Math.floor(rand() * 5);
      if (kind === 0) line += ` id=${Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0')}`;
      else if (kind === 1) line += ` bytes=${Math.floor(rand() ** 2 * 1e9)}`;
      else if (kind === 2) line += ` took=${(rand() * 2000).toFixed(3)}ms`;
      else if (kind === 3) line += ` path=/var/lib/shadowvault/${word(rand)}/${Math.floor(rand() * 4096)}.chunk`;
      else line += ` vm="${word(rand)}-${Math.floor(rand() * 64)}"`;
    }
    line += '\n';
    pos += out.write(line, pos, 'latin1');
  }
  return out;
}

/** `size` random bytes (incompressible). */
export function randomBytes(size: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(size));
}

/** `size` zero bytes in real, touched pages (a fresh calloc maps the shared zero page, which flatters). */
export function zeroBytes(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  buf.fill(1);
  buf.fill(0);
  return buf;
}

/** Copy `buf` into a SharedArrayBuffer (for pool runs: workers read it without copies). */
export function shared(buf: Uint8Array): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(buf.byteLength));
  view.set(buf);
  return view;
}

/** Write `size` random (incompressible) bytes to a new file at `path`, 16 MiB at a time. */
export function writeRandomFile(path: string, size: number): void {
  const buf = Buffer.allocUnsafe(16 * 1024 * 1024);
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < size; at += buf.length) writeSync(fd, randomFillSync(buf), 0, Math.min(buf.length, size - at), at);
  } finally {
    closeSync(fd);
  }
}
