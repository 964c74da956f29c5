/**
 * A progress bar for long store operations (backup, check, restore, verify): bytes done/total, rate, ETA,
 * redrawn at most 10 times a second on stderr when stdout is a terminal (never in --json mode or when piped).
 */
import type { CliIo } from './command.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u ? 1 : 0)} ${units[u]}`;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}

export interface ProgressBar {
  update(p: { bytesDone: number; bytesTotal: number }): void;
  done(): void;
}

export function progressBar(io: CliIo, label: string, enabled: boolean): ProgressBar | undefined {
  if (!enabled || !io.stdout.isTTY) return undefined;
  const t0 = Date.now();
  let last = 0;
  let drawn = false;
  const draw = (done: number, total: number): void => {
    const secs = (Date.now() - t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 30;
    const fill = Math.round(frac * width);
    const eta = rate > 0 ? (total - done) / rate : Infinity;
    io.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(1)}% ${formatBytes(done)}/${formatBytes(total)} ${formatBytes(rate)}/s ETA ${formatDuration(eta)} `);
    drawn = true;
  };
  return {
    update(p) {
      const now = Date.now();
      if (now - last < 100 && p.bytesDone < p.bytesTotal) return;
      last = now;
      draw(p.bytesDone, p.bytesTotal);
    },
    done() {
      if (drawn) io.stderr.write('\n');
    },
  };
}
