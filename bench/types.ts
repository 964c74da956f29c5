/**
 * The benchmark framework's types. A suite measures one area and returns rows; the runner (bench/main.ts)
 * prints them as a table or JSON. Register a suite with one line in bench/suites.ts.
 */

export interface BenchOptions {
  /** Small data and few repetitions: a smoke run (seconds), not figures to record. */
  readonly quick: boolean;
  /** Progress lines go here (stderr), so stdout stays a clean table or JSON document. */
  readonly log: (line: string) => void;
}

/** One result line: column → value. Numbers are printed with sensible precision; null prints as "-". */
export type BenchRow = Readonly<Record<string, string | number | boolean | null>>;

export interface SuiteResult {
  /** Column order; defaults to the keys of the first row. */
  readonly columns?: readonly string[];
  readonly rows: readonly BenchRow[];
  /** Free-form lines printed under the table (conditions, targets met or not). */
  readonly notes?: readonly string[];
}

export interface Suite {
  /** Short name used by `--suite NAME`. */
  readonly name: string;
  readonly description: string;
  run(options: BenchOptions): Promise<SuiteResult>;
}
