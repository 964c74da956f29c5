import type { ErrorTable } from '../spec.js';

/** Errors of the QEMU side (src/qemu/): the QMP monitor and the guest agent of a running VM. */
export const QEMU_ERRORS = {
  SV_ERR_QEMU_CONNECT: { status: 502, summary: 'Could not connect to a VM\'s QMP or guest-agent unix socket (missing, refused, or no greeting in time).' },
  SV_ERR_QEMU_PROTOCOL: { status: 502, summary: 'The peer broke the QMP or guest-agent protocol (not JSON, a line over the length cap, an unknown reply id, a bad greeting).' },
  SV_ERR_QEMU_COMMAND_FAILED: { status: 502, summary: 'QEMU or the guest agent answered a command with an error; details carry its class and description.' },
  SV_ERR_QEMU_TIMEOUT: { status: 504, summary: 'QEMU or the guest agent did not answer a command (or send an awaited event) in time.' },
  SV_ERR_QEMU_GONE: { status: 502, summary: 'The QMP or guest-agent connection closed (the VM quit, or the client was closed) before the answer came.' },
  SV_ERR_QEMU_GUEST_AGENT_MISSING: { status: 404, summary: 'The VM has no virtserialport org.qemu.guest_agent.0 backed by a unix socket chardev.' },
} as const satisfies ErrorTable;
