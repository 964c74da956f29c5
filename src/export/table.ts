/**
 * The export table an NBD server consults: exports added and removed while it runs (the appliance starts
 * and stops exports through the API), and which one the empty (default) name means.
 */
import type { NbdExportEntry, NbdExportTable } from '../nbd/backend.js';

export class ExportTable implements NbdExportTable {
  #entries = new Map<string, NbdExportEntry>();
  #defaultName: string | null = null;

  /** Add an export; `isDefault` makes the empty name mean it. */
  add(entry: NbdExportEntry, isDefault = false): void {
    this.#entries.set(entry.name, entry);
    if (isDefault || this.#defaultName === null) this.#defaultName = entry.name;
  }

  remove(name: string): void {
    this.#entries.delete(name);
    if (this.#defaultName === name) this.#defaultName = this.#entries.keys().next().value ?? null;
  }

  list(): readonly NbdExportEntry[] {
    return [...this.#entries.values()];
  }

  lookup(name: string): NbdExportEntry | undefined {
    if (name === '') return this.#defaultName === null ? undefined : this.#entries.get(this.#defaultName);
    return this.#entries.get(name);
  }
}
