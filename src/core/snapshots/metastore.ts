/**
 * Snapshot metadata in `<snapshotter root>/metadata.db` (SQLite, WAL, every change in one
 * transaction).
 *
 *   CREATE TABLE snapshots (
 *     id      INTEGER PRIMARY KEY AUTOINCREMENT, -- short id: the directory snapshots/<id>
 *     key     TEXT NOT NULL UNIQUE,              -- active/view key, or committed name
 *     parent  TEXT,                              -- name of the committed parent (NULL: base)
 *     kind    TEXT NOT NULL,                     -- 'active' | 'view' | 'committed'
 *     created INTEGER NOT NULL,                  -- unix ms
 *     updated INTEGER NOT NULL,                  -- unix ms
 *     labels  TEXT NOT NULL DEFAULT '{}',        -- JSON object of string → string
 *     size    INTEGER,                           -- usage, fixed at commit (committed only)
 *     inodes  INTEGER
 *   );
 *   CREATE INDEX snapshots_parent ON snapshots(parent);
 *
 * Parents are referenced by name: only committed snapshots can be parents and their names
 * never change, so the reference stays valid; a snapshot with children cannot be removed.
 *
 * Migrations run in order at open, each in one transaction with the new PRAGMA user_version
 * (databases written before there were migrations are at 0 and already have the table):
 *   1: the table above.
 *   2: label keys of the one convention (labels.ts): `io.berth/container` and
 *      `io.berth/image-volume` become `berth.io/…`, so snapshots made by an earlier berthd are
 *      still found by recovery and the image volume sweep.
 * A database newer than this code is refused (snapshot.schema_too_new).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { errors } from '../../errors.js';
import type { SnapshotInfo, SnapshotKind, SnapshotUsage } from './types.js';
import { openWalDatabase, statements } from '../metadata/db.js';
import { migrateSnapshotLabels } from './labels.js';

export interface SnapshotRow {
  id: number;
  key: string;
  parent: string | null;
  kind: SnapshotKind;
  created: number;
  updated: number;
  labels: string;
  size: number | null;
  inodes: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  key     TEXT NOT NULL UNIQUE,
  parent  TEXT,
  kind    TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  labels  TEXT NOT NULL DEFAULT '{}',
  size    INTEGER,
  inodes  INTEGER
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
`;

const migrations: Array<string | ((db: Database.Database) => void)> = [
  SCHEMA,
  (db) => {
    const rows = db.prepare('SELECT id, labels FROM snapshots').all() as { id: number; labels: string }[];
    const put = db.prepare('UPDATE snapshots SET labels = ? WHERE id = ?');
    for (const row of rows) {
      const next = JSON.stringify(migrateSnapshotLabels(JSON.parse(row.labels) as Record<string, string>));
      if (next !== row.labels) put.run(next, row.id);
    }
  },
];

/** The schema version of the snapshot metadata this code writes. */
export const SNAPSHOT_SCHEMA_VERSION = migrations.length;

export function toInfo(row: SnapshotRow): SnapshotInfo {
  const info: SnapshotInfo = {
    key: row.key,
    kind: row.kind,
    created: new Date(row.created),
    updated: new Date(row.updated),
    labels: JSON.parse(row.labels) as Record<string, string>,
  };
  if (row.parent !== null) info.parent = row.parent;
  return info;
}

export function validateKey(key: string, what = 'key'): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 4096 || key.includes('\0')) {
    throw errors.invalidArgument('snapshot.invalid_key', `invalid snapshot ${what} ${JSON.stringify(key)}`);
  }
}

export class MetaStore {
  private readonly db: Database.Database;
  private readonly sql: ReturnType<typeof statements>;

  constructor(root: string) {
    // WAL, and on a full disk the in-memory WAL index (openWalDatabase): berthd still starts.
    this.db = openWalDatabase(join(root, 'metadata.db'));
    this.db.pragma('synchronous = NORMAL');
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > migrations.length) {
      this.db.close();
      throw errors.failedPrecondition(
        'snapshot.schema_too_new',
        `snapshot metadata ${join(root, 'metadata.db')} has schema version ${current}; this berth understands up to ${migrations.length} (was it written by a newer berthd?)`,
      );
    }
    for (let v = current; v < migrations.length; v++) {
      this.db.transaction(() => {
        const m = migrations[v]!;
        if (typeof m === 'string') this.db.exec(m);
        else m(this.db);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
    this.sql = statements(this.db);
  }

  close(): void {
    this.db.close();
  }

  get(key: string): SnapshotRow | undefined {
    return this.sql('SELECT * FROM snapshots WHERE key = ?').get(key) as SnapshotRow | undefined;
  }

  mustGet(key: string): SnapshotRow {
    const row = this.get(key);
    if (!row) throw errors.notFound('snapshot.not_found', `snapshot ${JSON.stringify(key)} not found`);
    return row;
  }

  all(): SnapshotRow[] {
    return this.sql('SELECT * FROM snapshots ORDER BY id').all() as SnapshotRow[];
  }

  /** Ancestors of a committed snapshot, starting with itself (newest first). */
  chain(name: string | null): SnapshotRow[] {
    const out: SnapshotRow[] = [];
    let cur = name;
    while (cur !== null) {
      const row = this.mustGet(cur);
      out.push(row);
      cur = row.parent;
    }
    return out;
  }

  /** Inserts a new active/view snapshot; checks the parent is committed and the key free. */
  create(key: string, parent: string | undefined, kind: 'active' | 'view', labels: Record<string, string>): SnapshotRow {
    validateKey(key);
    return this.db.transaction(() => {
      if (this.get(key)) throw errors.alreadyExists('snapshot.exists', `snapshot ${JSON.stringify(key)} already exists`);
      if (parent !== undefined) {
        const p = this.get(parent);
        if (!p) throw errors.notFound('snapshot.parent_not_found', `parent snapshot ${JSON.stringify(parent)} not found`);
        if (p.kind !== 'committed') {
          throw errors.failedPrecondition('snapshot.parent_not_committed', `parent ${JSON.stringify(parent)} is not committed`);
        }
      }
      const now = Date.now();
      this.sql('INSERT INTO snapshots (key, parent, kind, created, updated, labels) VALUES (?, ?, ?, ?, ?, ?)').run(
        key,
        parent ?? null,
        kind,
        now,
        now,
        JSON.stringify(labels),
      );
      return this.mustGet(key);
    })();
  }

  /** active `key` → committed `name`, keeping its id (and so its directory). */
  commit(name: string, key: string, labels: Record<string, string> | undefined, usage: SnapshotUsage): void {
    validateKey(name, 'name');
    this.db.transaction(() => {
      const row = this.mustGet(key);
      if (row.kind !== 'active') {
        throw errors.failedPrecondition('snapshot.not_active', `snapshot ${JSON.stringify(key)} is ${row.kind}, not active`);
      }
      if (this.get(name)) throw errors.alreadyExists('snapshot.exists', `snapshot ${JSON.stringify(name)} already exists`);
      const merged = labels === undefined ? row.labels : JSON.stringify({ ...(JSON.parse(row.labels) as object), ...labels });
      this.sql("UPDATE snapshots SET key = ?, kind = 'committed', updated = ?, labels = ?, size = ?, inodes = ? WHERE id = ?").run(
        name,
        Date.now(),
        merged,
        usage.size,
        usage.inodes,
        row.id,
      );
    })();
  }

  /** Deletes the record (refused while children exist); returns it so its dir can be removed. */
  /** The row of `key` if it may be removed (it exists and has no child); throws otherwise. */
  removable(key: string): SnapshotRow {
    const row = this.mustGet(key);
    const child = this.sql('SELECT key FROM snapshots WHERE parent = ? LIMIT 1').get(key) as { key: string } | undefined;
    if (child) {
      throw errors.failedPrecondition('snapshot.has_children', `snapshot ${JSON.stringify(key)} has child ${JSON.stringify(child.key)}`);
    }
    return row;
  }

  remove(key: string): SnapshotRow {
    return this.db.transaction(() => {
      const row = this.removable(key);
      this.sql('DELETE FROM snapshots WHERE id = ?').run(row.id);
      return row;
    })();
  }

  /** Deletes the row with this id, if any (a removal finished by the start-up sweep). */
  removeId(id: number): void {
    this.sql('DELETE FROM snapshots WHERE id = ?').run(id);
  }

  ids(): Set<number> {
    return new Set((this.sql('SELECT id FROM snapshots').all() as Array<{ id: number }>).map((r) => r.id));
  }
}
