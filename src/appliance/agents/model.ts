/**
 * What the appliance keeps about host agents (state files agents.json, pairings.json, inventory.json).
 * A host is its agent: host id = agent id (one agent per hypervisor host).
 */
import type { HostReport, VmReport } from '../../agent/rpc.js';

export interface AgentRecord {
  id: string;
  /** Host name (from --name at pairing; updated by its inventory reports). Unique among agents not revoked. */
  name: string;
  cluster: string | null;
  agentVersion: string;
  hypervisor: { name: string; version: string };
  pairedAt: string;
  lastSeenAt?: string;
  revokedAt?: string;
  /** The id of its credential in tokens.json (removed on revoke). */
  tokenId: string;
  /** Fingerprint of the certificate the agent saw at pairing ("none": loopback http). */
  fingerprint: string;
}

/** A pairing code, stored as its HMAC key (SHA-256 of the secret, see src/agent/channel/binding.ts). */
export interface PairingRecord {
  id: string;
  key: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

/** The last inventory an agent reported. */
export interface HostInventory {
  agentId: string;
  host: HostReport;
  vms: VmReport[];
  reportedAt: string;
}
