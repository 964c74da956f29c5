/**
 * The writer guest's consistency rule (test/helpers/writer-guest.ts) on synthetic states: what a point in
 * time looks like (after a tick, in the middle of one), and what torn copies look like.
 */
import t from 'tap';
import { RING_SLOTS, checkWriterRule } from '../helpers/writer-guest.js';

/** The ring after the guest wrote counters 1..newest. */
function ring(newest: number): number[] {
  return Array.from({ length: RING_SLOTS }, (_, i) => {
    const v = newest - ((newest - i) % RING_SLOTS + RING_SLOTS) % RING_SLOTS;
    return v;
  });
}

t.test('points in time pass', async (t) => {
  t.same(checkWriterRule(1000, ring(1000)).problems, [], 'after a tick');
  t.same(checkWriterRule(999, ring(1000)).problems, [], 'between the ring write and the header write');
  t.same(checkWriterRule(256, ring(256)).problems, [], 'first full ring');
});

t.test('torn copies and unfinished rings fail', async (t) => {
  t.match(checkWriterRule(997, ring(1000)).problems, [/older than the newest slot 1000/], 'header read before two more ticks');
  t.match(checkWriterRule(1001, ring(1000)).problems, [/newer than every slot/]);
  const mixed = ring(1000);
  mixed[10] = 10 + 256 * 2; // a slot from an older lap
  t.match(checkWriterRule(1000, mixed).problems.join(';'), /slot 10 holds 522, older than 745/);
  const moved = ring(1000);
  moved[11] = 1000 - 1; // the value of slot 999 % 256 in slot 11
  t.match(checkWriterRule(1000, moved).problems.join(';'), /belongs in slot/);
  t.match(checkWriterRule(100, ring(100)).problems, [/not full yet/]);
});
