/**
 * A QMP pass-through with a trap, for kill -9 tests that must stop an agent at an exact step: the agent talks
 * to `path`, every connection is piped to QEMU's own QMP socket (`upstream`), and the next command the armed
 * trap matches does not reach the agent's answer: with `send` QEMU runs it and its answer is kept from the
 * agent (the agent dies after QEMU ran it), with `drop` it is never sent (the agent dies before). Nothing
 * more of that connection reaches QEMU; `arm` resolves once the command is held (and, for `send`, answered),
 * so the test kills the agent at that step, then calls `release()`, which closes the upstream connection so
 * that QEMU (one client per -qmp socket) takes the restarted agent's. QMP is one JSON object per line.
 */
import { connect, createServer, type Socket } from 'node:net';

interface T {
  teardown(fn: () => void | Promise<void>): void;
}

export type Match = (command: string, args: Record<string, unknown> | undefined) => boolean;

export interface QmpTrap {
  readonly path: string;
  /** Catch the next command `match` accepts; resolves with QEMU's answer (`send`) or '' (`drop`). */
  arm(match: Match, how: 'send' | 'drop'): Promise<string>;
  /** Close the caught connection's upstream side. */
  release(): void;
}

export async function startQmpTrap(t: T, path: string, upstream: string): Promise<QmpTrap> {
  let armed: { match: Match; how: 'send' | 'drop'; caught: (answer: string) => void } | undefined;
  let held: Socket | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = connect(upstream);
    sockets.add(down).add(up);
    let buf = '';
    let trapped: ((answer: string) => void) | undefined;
    let answer = '';
    let stopped = false;
    up.on('data', (d) => {
      if (trapped) {
        answer += d.toString('utf8');
        if (/"(return|error)"/u.test(answer)) {
          const done = trapped;
          trapped = undefined;
          done(answer.trim());
        }
      } else if (!stopped && !down.destroyed) down.write(d);
    });
    const close = (): void => {
      sockets.delete(down);
      down.destroy();
      if (held !== up) {
        sockets.delete(up);
        up.destroy();
      }
    };
    up.on('error', close).on('close', close);
    down.on('error', close).on('close', close);
    down.on('data', (d) => {
      if (stopped) return;
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl + 1);
        buf = buf.slice(nl + 1);
        let msg: { execute?: string; arguments?: Record<string, unknown> } = {};
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          // not ours to judge: QEMU answers it
        }
        const a = armed;
        if (a && msg.execute && a.match(msg.execute, msg.arguments)) {
          armed = undefined;
          stopped = true;
          held = up;
          if (a.how === 'drop') a.caught('');
          else {
            trapped = a.caught;
            up.write(line);
          }
          return;
        }
        up.write(line);
      }
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    path,
    arm: (match, how) => new Promise<string>((caught) => (armed = { match, how, caught })),
    release() {
      held?.destroy();
      held = undefined;
    },
  };
}
