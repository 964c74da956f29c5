/**
 * The calls the appliance makes to a host agent over the agent's control channel, and the transport contract
 * they travel on. Two owners, one file:
 * - the TRANSPORT (src/agent/channel/*: pairing, TLS with the pinned certificate, framing, reconnect, auth
 *   scope) implements `AgentRpc` on the appliance side and dispatches to `AgentHandlers` on the agent side;
 * - the METHODS (src/agent/methods/*: views over the HypervisorDriver, ranges hashed and compressed at the
 *   source, restore-to-host) implement `AgentHandlers` on the agent, and the appliance's `agent` DiskSource
 *   (src/sources/agent.ts) calls them through `AgentRpc`.
 *
 * Every call is `{method, params}` (JSON) plus an optional binary payload; every answer is `{result}` (JSON)
 * plus an optional binary payload, or a coded error (WireError). Params and results are validated on receipt
 * (hostile peer): unknown method, wrong types or sizes, unknown session → SV_ERR_AGENT_* errors.
 *
 * Adding a method is one entry in `AgentMethods` plus its handler.
 */
import type { WireError } from '../errors/index.js';
import type { ChangeAnswer, ChangeReference, Consistency, OnlineCheck, TrackingMethod, VmInfo } from '../hypervisor/driver.js';
import type { Extent } from '../formats/types.js';
import type { VmConfigDescription } from '../hypervisor/config.js';
import type { ApplianceRef, OwnerRecord } from './owner.js';

/** What the agent reports about its host (hello and every inventory push). */
export interface HostReport {
  readonly name: string;
  readonly cluster: string | null;
  readonly agentVersion: string;
  readonly hypervisor: { readonly name: string; readonly version: string };
  /** A file server's agent (`--file-server`): the SMB shares it serves (their names). */
  readonly fileServer?: { readonly shares: readonly string[] };
}

/** One VM as the agent reports it: the driver's VmInfo plus its online check. */
export interface VmReport extends VmInfo {
  readonly online: OnlineCheck;
  /** The appliance that protects the VM, from its ownership record (src/agent/owner.ts); absent: none. */
  readonly owner?: OwnerRecord;
}

export interface InventoryReport {
  readonly host: HostReport;
  readonly vms: readonly VmReport[];
}

export interface ViewDiskReport {
  readonly index: number;
  readonly key: string;
  readonly name: string;
  readonly virtualSize: number;
  readonly identity: string;
  readonly nextReference: ChangeReference | null;
  /**
   * The disk's frozen file lies on an SMB share (src/smb/): the appliance reads it through the agent of the
   * file server that serves `share` (share.open), not through this host.
   */
  readonly onShare?: { readonly server: string; readonly share: string; readonly path: string };
}

/** Appliance → agent calls. `payload` marks the ones that carry binary data (request → / ← answer). */
export interface AgentMethods {
  /** Fresh inventory now (the agent also pushes it on its own when something changes). */
  'inventory.get': { params: Record<string, never>; result: InventoryReport };
  /** Take one point in time of all of a VM's disks. */
  'view.open': {
    params: { vmId: string; mode: 'auto' | 'online' | 'offline'; allowOnline: boolean; freezeTimeoutMs?: number; blockSize?: number };
    result: { session: string; consistency: Consistency; reasons: string[]; pauseMs?: number; freezeMs?: number; disks: ViewDiskReport[] };
  };
  'view.extents': { params: { session: string; disk: number }; result: { extents: Extent[] } };
  'view.changes': { params: { session: string; disk: number; previous: ChangeReference | null }; result: ChangeAnswer };
  /**
   * Hash and compress a block range at the source. Request payload: oldDigests (count × 32) or empty. Answer
   * payload: the changed blocks only (see src/agent/methods/range-codec.ts); the appliance rebuilds the full
   * RangeResult (unchanged blocks keep their old digests).
   */
  'view.range': { params: { session: string; disk: number; offset: number; length: number; blockSize: number; level: number; hasOld: boolean }; result: { count: number } };
  /**
   * Many view.range calls of one disk in one (the appliance batches its small ranges: one read batch and one
   * worker task on the agent instead of a call, a read and a task per range). `spans`: [offset, length] of
   * each range (each checked as view.range's; at most MAX_SPANS, at most MAX_CALL_BYTES in all). Request
   * payload: the old digests of every span back to back when hasOld, else empty. Answer payload: each span's
   * view.range answer back to back; `lengths[i]` is span i's byte length in it. An agent older than this
   * method answers SV_ERR_AGENT_UNKNOWN_METHOD: the appliance falls back to view.range.
   */
  'view.spans': { params: { session: string; disk: number; blockSize: number; level: number; hasOld: boolean; spans: Array<[number, number]> }; result: { lengths: number[] } };
  'view.read': { params: { session: string; disk: number; offset: number; length: number }; result: { length: number } };
  /** The VM's configuration as of the view's point: the description; answer payload: the files back to back. */
  'view.configuration': { params: { session: string }; result: { configuration: VmConfigDescription } };
  'view.commit': { params: { session: string }; result: Record<string, never> };
  'view.abort': { params: { session: string }; result: Record<string, never> };
  'view.release': { params: { session: string }; result: Record<string, never> };
  /**
   * File server's agent: open a frozen disk file of a served share for reading (a view session of one disk,
   * read with view.extents / view.range / view.read, ended with view.release). The host that froze it
   * keeps it frozen until that release.
   */
  'share.open': { params: { share: string; path: string }; result: { session: string; virtualSize: number } };
  /** Restore a disk back to the host, next to the VM's disks, under the agent's allowed root. */
  'restore.open': { params: { vmId: string; name: string; virtualSize: number; format: 'raw' | 'vhdx' | 'vhd' | 'qcow2'; into?: string; fileName?: string }; result: { handle: string; path: string } };
  'restore.write': { params: { handle: string; offset: number }; result: { written: number } };
  'restore.close': { params: { handle: string; commit: boolean }; result: { path: string; bytes: number } };
  /** Whole-VM import (src/agent/methods/import.ts): a new folder under the first restore root. */
  'import.open': { params: { vmId: string; name: string }; result: { handle: string; folder: string } };
  /** Import the VM from the files written into the folder (restore.open with `into`). */
  'import.vm': { params: { handle: string; configuration: VmConfigDescription; disks: string[] }; result: { vmId: string; name: string; folder: string } };
  /** End the import: keep=false removes the folder. */
  'import.close': { params: { handle: string; keep: boolean }; result: { folder: string } };
  /**
   * Make the calling appliance the VM's owner (src/agent/owner.ts): idempotent for its owner; another
   * appliance's record → SV_ERR_AGENT_VM_OWNED, unless `takeOver` (an admin's forced takeover: replaced, the
   * previous owner returned and kept in the record). The caller's identity is the one this connection
   * learned (inventory.push's answer), never a param.
   */
  'owner.claim': { params: { vmId: string; takeOver?: boolean }; result: { owner: OwnerRecord; previous?: OwnerRecord } };
  /** Remove the VM's record if the calling appliance owns it (released: false when it had none or another owns it). */
  'owner.release': { params: { vmId: string }; result: { released: boolean } };
}

/** The appliance's answer to `inventory.push`: who it is (absent from appliances before ownership records). */
export interface InventoryPushAnswer {
  readonly appliance?: ApplianceRef;
}

export type AgentMethod = keyof AgentMethods;
export type AgentParams<M extends AgentMethod> = AgentMethods[M]['params'];
export type AgentResult<M extends AgentMethod> = AgentMethods[M]['result'];

export interface AgentAnswer<M extends AgentMethod> {
  readonly result: AgentResult<M>;
  readonly payload?: Uint8Array;
  /**
   * Agent side only, instead of `payload`: the payload in pieces, joined once into the answer's frame (a
   * view.range answer is record headers between views of the compressed blocks: no copy of its own).
   */
  readonly payloadParts?: readonly Uint8Array[];
}

/** An answer's payload as one buffer (its pieces joined), as the peer receives it. */
export function answerPayload(a: { readonly payload?: Uint8Array; readonly payloadParts?: readonly Uint8Array[] }): Uint8Array | undefined {
  return a.payloadParts ? Buffer.concat(a.payloadParts) : a.payload;
}

/** Appliance side: call an agent (by id). Throws SV_ERR_AGENT_OFFLINE when it is not connected. */
export interface AgentRpc {
  call<M extends AgentMethod>(agentId: string, method: M, params: AgentParams<M>, payload?: Uint8Array, signal?: AbortSignal): Promise<AgentAnswer<M>>;
  /** Bytes that crossed the channel for this agent, both directions (metrics, bytesSent). */
  bytes(agentId: string): { sent: number; received: number };
}

/** Agent side: one handler per method. */
export type AgentHandlers = {
  [M in AgentMethod]: (params: AgentParams<M>, payload: Uint8Array | undefined, signal: AbortSignal) => Promise<AgentAnswer<M>>;
};

export type AgentErrorAnswer = { readonly error: WireError };
export type { TrackingMethod };
