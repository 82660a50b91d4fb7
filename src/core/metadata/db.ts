/**
 * berth's metadata store: one SQLite database (WAL mode) under the root directory.
 *
 * Schema (version 2) — every table is namespaced like containerd's bolt buckets:
 *   namespaces(name PK, labels JSON, created_at)
 *   images(namespace, name, target_media_type, target_digest, target_size, config_digest,
 *          labels JSON, created_at, updated_at; PK(namespace, name))
 *     name is a full reference: "docker.io/library/busybox:latest" (repo tag) or
 *     "docker.io/library/busybox@sha256:…" (repo digest). The CRI image id is config_digest:
 *     all rows sharing it are one CRI image.
 *   sandboxes(namespace, id PK, record JSON) — pod sandboxes; record = SandboxRecord
 *     (sandbox-record.ts), a JSON document carrying its own `version` (2)
 *   containers(namespace, id PK, sandbox_id, …, record JSON)
 *   names(namespace, name, holder; PK(namespace, name)) — reserved sandbox/container names
 *   pending_removals(namespace, kind, id, record JSON; PK(namespace, kind, id)) — objects whose
 *     record is gone (the CRI no longer sees them) but whose disk work (task, rootfs snapshot,
 *     dirs) runs after the reply; finished at the next start if berthd died first.
 * Writes are transactional; migrations are applied in order at open, each in one transaction
 * with the new PRAGMA user_version:
 *   1: the tables above but pending_removals.
 *   2: sandbox records get a version and typed fields (state 'creating', hostNetwork, pause,
 *      networkDown, exit … instead of untyped `extra` keys): migrateSandboxRecordV1.
 *   3: pending_removals.
 * A database whose user_version is higher than this code knows is refused
 * (metadata.schema_too_new): a newer berthd wrote it. Statements are compiled once per SQL text
 * (`statements()`): compiling one costs more than running it, and the kubelet's polls run the
 * same few statements many times a second. On a full disk see openWalDatabase.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { errors } from '../../errors.js';
import { log } from '../../log.js';
import { migrateSandboxRecordV1 } from './sandbox-record.js';

/** One schema step: SQL, or a function for changes inside the JSON documents. */
type Migration = string | ((db: Database.Database) => void);

const migrations: Migration[] = [
  `CREATE TABLE namespaces (
     name TEXT PRIMARY KEY,
     labels TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL
   );
   CREATE TABLE images (
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     target_media_type TEXT NOT NULL,
     target_digest TEXT NOT NULL,
     target_size INTEGER NOT NULL,
     config_digest TEXT NOT NULL,
     labels TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, name)
   );
   CREATE INDEX images_by_config ON images(namespace, config_digest);
   CREATE TABLE sandboxes (
     namespace TEXT NOT NULL,
     id TEXT NOT NULL,
     record TEXT NOT NULL,
     PRIMARY KEY (namespace, id)
   );
   CREATE TABLE containers (
     namespace TEXT NOT NULL,
     id TEXT NOT NULL,
     sandbox_id TEXT NOT NULL,
     record TEXT NOT NULL,
     PRIMARY KEY (namespace, id)
   );
   CREATE INDEX containers_by_sandbox ON containers(namespace, sandbox_id);
   CREATE TABLE names (
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     holder TEXT NOT NULL,
     PRIMARY KEY (namespace, name)
   );`,
  (db) => {
    const rows = db.prepare('SELECT namespace, id, record FROM sandboxes').all() as { namespace: string; id: string; record: string }[];
    const put = db.prepare('UPDATE sandboxes SET record = ? WHERE namespace = ? AND id = ?');
    for (const row of rows) put.run(JSON.stringify(migrateSandboxRecordV1(JSON.parse(row.record) as Record<string, unknown>)), row.namespace, row.id);
  },
  `CREATE TABLE pending_removals (
     namespace TEXT NOT NULL,
     kind TEXT NOT NULL,
     id TEXT NOT NULL,
     record TEXT NOT NULL,
     PRIMARY KEY (namespace, kind, id)
   );`,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = migrations.length;

export type DB = Database.Database;

/**
 * `sql(text)` returns the one prepared statement of `db` for that SQL text, compiled on first
 * use. Callers pass literal SQL, so the cache holds as many statements as the code has.
 */
export function statements(db: DB): (text: string) => Database.Statement {
  const cache = new Map<string, Database.Statement>();
  return (text) => {
    let st = cache.get(text);
    if (!st) {
      st = db.prepare(text);
      cache.set(text, st);
    }
    return st;
  };
}

/** SQLite's words for a full disk: a write found no room, or the WAL index (-shm) could not grow. */
const NO_SPACE_CODES = new Set(['SQLITE_FULL', 'SQLITE_IOERR_SHMSIZE']);

function openWal(path: string, exclusive: boolean): DB {
  const db = new Database(path);
  try {
    if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Opens a SQLite database in WAL mode. On a full disk the WAL index file (-shm, made again at
 * every open: the last close deletes it) cannot be created, and the open fails
 * (`SQLITE_IOERR_SHMSIZE`). Then the database is opened in exclusive locking mode, where SQLite
 * keeps the WAL index in memory: berthd starts and serves what it has; writes fail
 * `storage.no_space` until there is room. Nothing else may open the file meanwhile (a restart
 * with room goes back to the normal mode). Used for meta.db and the snapshotter's metadata.db:
 * on a node whose one disk is full, either failing kept berthd from starting.
 */
export function openWalDatabase(path: string): DB {
  try {
    return openWal(path, false);
  } catch (err) {
    if (!NO_SPACE_CODES.has(String((err as { code?: unknown }).code))) throw err;
    const db = openWal(path, true);
    log.warn('metadata: the disk under a database is full; opened in exclusive locking mode (no -shm) until a restart with room', {
      path,
      error: (err as Error).message,
    });
    return db;
  }
}

/** Opens (and migrates) the metadata database; on a full disk see openWalDatabase. */
export function openMetadata(path: string): DB {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = openWalDatabase(path);
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    db.close();
    throw errors.failedPrecondition(
      'metadata.schema_too_new',
      `metadata ${path} has schema version ${current}; this berth understands up to ${migrations.length} (was it written by a newer berthd?)`,
    );
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      const m = migrations[v]!;
      if (typeof m === 'string') db.exec(m);
      else m(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}
