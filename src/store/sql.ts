/** The small SQL surface both backends provide, so that the store's logic is written once. */
import type { Dialect } from './migrations.js';

export type SqlParam = string | number | null;
export type Row = Record<string, unknown>;

/** A connection (or a transaction on one). SQL uses `?` placeholders; the PostgreSQL adapter numbers them. */
export interface SqlConn {
  all(sql: string, params?: readonly SqlParam[]): Promise<Row[]>;
  get(sql: string, params?: readonly SqlParam[]): Promise<Row | undefined>;
  run(sql: string, params?: readonly SqlParam[]): Promise<{ changes: number }>;
}

/** A backend: how to run a read snapshot and an exclusive write transaction, and what its errors mean. */
export interface SqlBackend {
  readonly dialect: Dialect;
  readonly location: string;
  /** Opened read-only: reads work, writes fail with MERIDIAN_E_STORE_READ_ONLY. */
  readonly readonly: boolean;
  /** Runs `fn` on a consistent snapshot. */
  read<T>(fn: (c: SqlConn) => Promise<T>): Promise<T>;
  /** Runs `fn` in a write transaction that excludes every other writer (other processes and machines too). */
  write<T>(fn: (c: SqlConn) => Promise<T>): Promise<T>;
  tableExists(c: SqlConn, table: string): Promise<boolean>;
  /** Turns a driver error into a StoreError when it is one the user can act on; returns anything else as it is. */
  mapError(err: unknown): unknown;
  close(): Promise<void>;
}
