/**
 * berth's metadata store: one SQLite database (WAL mode) under the root directory.
 *
 * Schema (version 1) — every table is namespaced like containerd's bolt buckets:
 *   namespaces(name PK, labels JSON, created_at)
 *   images(namespace, name, target_media_type, target_digest, target_size, config_digest,
 *          labels JSON, created_at, updated_at; PK(namespace, name))
 *     name is a full reference: "docker.io/library/busybox:latest" (repo tag) or
 *     "docker.io/library/busybox@sha256:…" (repo digest). The CRI image id is config_digest:
 *     all rows sharing it are one CRI image.
 *   sandboxes(namespace, id PK, …, record JSON)   — pod sandboxes (runtime issue)
 *   containers(namespace, id PK, sandbox_id, …, record JSON)
 *   names(namespace, name, holder; PK(namespace, name)) — reserved sandbox/container names
 * Version 2:
 *   pending_removals(namespace, kind, id, record JSON; PK(namespace, kind, id)) — objects whose
 *     record is gone (the CRI no longer sees them) but whose disk work (task, rootfs snapshot,
 *     dirs) runs after the reply; finished at the next start if berthd died first.
 * Writes are transactional; migrations are applied in order at open. Statements are compiled
 * once per SQL text (`statements()`): compiling one costs more than running it, and the
 * kubelet's polls run the same few statements many times a second.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const migrations: string[] = [
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
  `CREATE TABLE pending_removals (
     namespace TEXT NOT NULL,
     kind TEXT NOT NULL,
     id TEXT NOT NULL,
     record TEXT NOT NULL,
     PRIMARY KEY (namespace, kind, id)
   );`,
];

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

export function openMetadata(path: string): DB {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}
