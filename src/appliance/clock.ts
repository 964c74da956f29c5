/** Time for the appliance: the real clock in production, a manual one in tests (scheduler over a simulated day). */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export class ManualClock implements Clock {
  #t: number;
  constructor(start: number | string) {
    this.#t = typeof start === 'number' ? start : Date.parse(start);
  }
  now(): number {
    return this.#t;
  }
  advance(ms: number): void {
    this.#t += ms;
  }
  set(t: number | string): void {
    this.#t = typeof t === 'number' ? t : Date.parse(t);
  }
}
