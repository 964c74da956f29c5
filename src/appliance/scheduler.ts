/**
 * The protection schedule: turns protection groups into jobs as time passes.
 *
 * `tick()` looks at the interval (last tick, now] of the injected clock and, for each enabled group and each
 * member, asks for:
 * - a `scheduled` backup when a recovery point time of day (UTC) falls in the interval;
 * - otherwise a `sync` backup when a sync slot boundary (midnight UTC + k × frequency) falls in it;
 * - a consistency check when a check time of day falls in it;
 * - store maintenance (appliance-wide, config.maintenance): a gc and a verify of the store at their times.
 * A request is skipped when the same kind is already queued for that source (a late sync is not stacked),
 * except that a scheduled point is always asked for. The last tick is saved, so after downtime the next
 * tick catches up once (at most one job of each kind per source, looking back at most 24 hours).
 * The real-time driver calls `tick()` every `intervalMs`; tests call it after advancing a ManualClock.
 */
import type { Clock } from './clock.js';
import type { ProtectionGroup } from './model.js';
import type { JobRequest } from './queue.js';

const DAY = 86_400_000;

export interface ScheduleSink {
  /** Is a job of this kind for this source (undefined: store-wide) already waiting (queued, not yet running)? */
  isQueued(kind: 'backup' | 'check' | 'gc' | 'verify', sourceId: string | undefined): boolean;
  enqueue(req: JobRequest): Promise<unknown>;
}

export interface SchedulerState {
  lastTick?: number;
}

/** Store-wide jobs at times of day (UTC "HH:MM"). */
export interface Maintenance {
  gcTimes: readonly string[];
  verifyTimes: readonly string[];
}

/** "HH:MM" → minutes after midnight. */
export function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

/** Does some time of day `minute` (repeating daily) fall in (from, to]? */
function crossesDaily(minute: number, from: number, to: number): boolean {
  const offset = minute * 60_000;
  const dayStart = Math.floor(to / DAY) * DAY;
  for (let t = dayStart + offset; t > from; t -= DAY) if (t <= to) return true;
  return false;
}

/** Does a boundary of period `ms` (aligned to midnight UTC) fall in (from, to]? */
function crossesPeriod(ms: number, from: number, to: number): boolean {
  const dayStart = Math.floor(to / DAY) * DAY;
  const k = Math.floor((to - dayStart) / ms);
  const last = dayStart + k * ms;
  return last > from;
}

export class Scheduler {
  #clock: Clock;
  #groups: () => readonly ProtectionGroup[];
  #sink: ScheduleSink;
  #state: SchedulerState;
  #persist: (s: SchedulerState) => Promise<void>;
  #maintenance: Maintenance;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> = Promise.resolve();

  constructor(opts: { clock: Clock; groups: () => readonly ProtectionGroup[]; sink: ScheduleSink; state: SchedulerState; persist: (s: SchedulerState) => Promise<void>; maintenance?: Maintenance }) {
    this.#maintenance = opts.maintenance ?? { gcTimes: [], verifyTimes: [] };
    this.#clock = opts.clock;
    this.#groups = opts.groups;
    this.#sink = opts.sink;
    this.#state = opts.state;
    this.#persist = opts.persist;
  }

  /** Ask for the jobs due in (last tick, now]. The first tick ever only records the time. */
  tick(): Promise<void> {
    const run = this.#busy.then(() => this.#tick());
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #tick(): Promise<void> {
    const now = this.#clock.now();
    const last = this.#state.lastTick;
    if (last === undefined || now <= last) {
      if (last === undefined) await this.#save(now);
      return;
    }
    const from = Math.max(last, now - DAY);
    for (const g of this.#groups()) {
      if (!g.enabled) continue;
      const point = g.recoveryPointTimes.some((t) => crossesDaily(minutesOf(t), from, now));
      const sync = !point && crossesPeriod(g.syncFrequencyMinutes * 60_000, from, now);
      const check = g.consistencyCheckTimes.some((t) => crossesDaily(minutesOf(t), from, now));
      for (const sourceId of g.members) {
        if (point) {
          await this.#sink.enqueue({ kind: 'backup', trigger: 'recovery-point', sourceId, groupId: g.id, params: { tag: 'scheduled' } });
        } else if (sync && !this.#sink.isQueued('backup', sourceId)) {
          await this.#sink.enqueue({ kind: 'backup', trigger: 'sync', sourceId, groupId: g.id, params: { tag: 'sync' } });
        }
        if (check && !this.#sink.isQueued('check', sourceId)) {
          await this.#sink.enqueue({ kind: 'check', trigger: 'consistency-check', sourceId, groupId: g.id, params: {} });
        }
      }
    }
    for (const [kind, times] of [['gc', this.#maintenance.gcTimes], ['verify', this.#maintenance.verifyTimes]] as const) {
      if (times.some((t) => crossesDaily(minutesOf(t), from, now)) && !this.#sink.isQueued(kind, undefined)) {
        await this.#sink.enqueue({ kind, trigger: 'maintenance' });
      }
    }
    await this.#save(now);
  }

  async #save(now: number): Promise<void> {
    this.#state = { ...this.#state, lastTick: now };
    await this.#persist(this.#state);
  }

  /** Drive `tick()` from real time. */
  start(intervalMs = 15_000): void {
    this.stop();
    void this.tick();
    this.#timer = setInterval(() => void this.tick(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async idle(): Promise<void> {
    await this.#busy;
  }
}
