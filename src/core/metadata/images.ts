/** Image records (name → target manifest descriptor + config digest), per namespace. */
import { statements, type DB } from './db.js';

export interface ImageRecord {
  namespace: string;
  /** Full reference: repo:tag or repo@digest. */
  name: string;
  target: { mediaType: string; digest: string; size: number };
  /** The image config digest: the CRI image id. */
  configDigest: string;
  labels: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}

interface Row {
  namespace: string;
  name: string;
  target_media_type: string;
  target_digest: string;
  target_size: number;
  config_digest: string;
  labels: string;
  created_at: number;
  updated_at: number;
}

const fromRow = (r: Row): ImageRecord => ({
  namespace: r.namespace,
  name: r.name,
  target: { mediaType: r.target_media_type, digest: r.target_digest, size: r.target_size },
  configDigest: r.config_digest,
  labels: JSON.parse(r.labels) as Record<string, string>,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export class ImageStore {
  private readonly sql: ReturnType<typeof statements>;
  private gen = 0;

  /**
   * Changes with every write (put, delete) through this store, berthd's only writer of image
   * records: readers cache what they derive from the records under it.
   */
  get generation(): number {
    return this.gen;
  }

  constructor(private readonly db: DB) {
    this.sql = statements(db);
  }

  get(namespace: string, name: string): ImageRecord | undefined {
    const r = this.sql('SELECT * FROM images WHERE namespace = ? AND name = ?').get(namespace, name) as Row | undefined;
    return r && fromRow(r);
  }

  list(namespace: string): ImageRecord[] {
    return (this.sql('SELECT * FROM images WHERE namespace = ? ORDER BY name').all(namespace) as Row[]).map(fromRow);
  }

  /** Every image in every namespace (for garbage collection). */
  all(): ImageRecord[] {
    return (this.sql('SELECT * FROM images').all() as Row[]).map(fromRow);
  }

  byConfig(namespace: string, configDigest: string): ImageRecord[] {
    return (this.sql('SELECT * FROM images WHERE namespace = ? AND config_digest = ? ORDER BY name').all(namespace, configDigest) as Row[]).map(fromRow);
  }

  /** Config digests starting with a prefix (for lookups by truncated id). */
  configsWithPrefix(namespace: string, prefix: string): string[] {
    const rows = this.sql('SELECT DISTINCT config_digest FROM images WHERE namespace = ? AND substr(config_digest, 1, ?) = ?').all(
      namespace,
      prefix.length,
      prefix,
    ) as { config_digest: string }[];
    return rows.map((r) => r.config_digest);
  }

  /** Create or update a set of names pointing at one image, in one transaction. */
  put(records: Omit<ImageRecord, 'createdAt' | 'updatedAt'>[]): void {
    const now = Date.now();
    const ensureNs = this.sql('INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)');
    const upsert = this.sql(
      `INSERT INTO images (namespace, name, target_media_type, target_digest, target_size, config_digest, labels, created_at, updated_at)
       VALUES (@namespace, @name, @mt, @digest, @size, @config, @labels, @now, @now)
       ON CONFLICT (namespace, name) DO UPDATE SET target_media_type = excluded.target_media_type,
         target_digest = excluded.target_digest, target_size = excluded.target_size,
         config_digest = excluded.config_digest, labels = excluded.labels, updated_at = excluded.updated_at`,
    );
    this.gen++;
    this.db.transaction(() => {
      for (const r of records) {
        ensureNs.run(r.namespace, now);
        upsert.run({
          namespace: r.namespace,
          name: r.name,
          mt: r.target.mediaType,
          digest: r.target.digest,
          size: r.target.size,
          config: r.configDigest,
          labels: JSON.stringify(r.labels),
          now,
        });
      }
    })();
    this.gen++;
  }

  /** Delete names; returns how many existed. */
  delete(namespace: string, names: string[]): number {
    const del = this.sql('DELETE FROM images WHERE namespace = ? AND name = ?');
    let n = 0;
    try {
      this.db.transaction(() => {
        for (const name of names) n += del.run(namespace, name).changes;
      })();
    } finally {
      this.gen++;
    }
    return n;
  }
}
