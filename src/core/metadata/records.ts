/**
 * Sandbox and container records, stored as JSON documents in the metadata database (the
 * CRI config itself is kept as protobuf bytes, base64, so no field is ever lost), plus the
 * name reservations that make RunPodSandbox/CreateContainer names unique. The sandbox record
 * and its state machine are in sandbox-record.ts; both stores check transitions on update.
 */
import { errors } from '../../errors.js';
import { statements, type DB } from './db.js';
import { checkSandboxRecord, checkSandboxTransition, parseSandboxRecord, type SandboxRecord } from './sandbox-record.js';

export type { LeftoverStep, SandboxPins, SandboxRecord, SandboxState } from './sandbox-record.js';

export type ContainerState = 'created' | 'running' | 'exited' | 'unknown';

export interface ContainerRecord {
  id: string;
  sandboxId: string;
  name: string;
  meta: { name: string; attempt: number };
  state: ContainerState;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  reason?: string;
  message?: string;
  pid?: number;
  /** The image as the user named it, and its resolved id. */
  image: string;
  imageId: string;
  imageRef: string;
  /** runtime.v1.ContainerConfig, protobuf bytes in base64. */
  config: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  logPath: string;
  snapshotKey: string;
  /** runtime.v1.LinuxContainerResources as last applied, protobuf bytes in base64. */
  resources?: string;
  extra: Record<string, unknown>;
}

/** Legal container state transitions (explicit, checked). */
const containerTransitions: Record<ContainerState, ContainerState[]> = {
  created: ['running', 'exited', 'unknown'],
  running: ['exited', 'unknown'],
  exited: [],
  unknown: ['running', 'exited'],
};

export function checkContainerTransition(id: string, from: ContainerState, to: ContainerState): void {
  if (from === to) return;
  if (!containerTransitions[from].includes(to)) {
    throw errors.failedPrecondition('container.bad_transition', `container ${id} is ${from}, cannot become ${to}`);
  }
}

export class SandboxStore {
  private readonly sql: ReturnType<typeof statements>;
  private gen = 0;

  /**
   * Changes with every write through this store (berthd's only writer of sandbox records, as
   * ContainerStore's): ListPodSandbox keeps its answer under it.
   */
  get generation(): number {
    return this.gen;
  }

  constructor(private readonly db: DB) {
    this.sql = statements(db);
  }

  put(ns: string, r: SandboxRecord): void {
    checkSandboxRecord(r);
    this.gen++;
    this.sql('INSERT INTO sandboxes (namespace, id, record) VALUES (?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE SET record = excluded.record').run(
      ns,
      r.id,
      JSON.stringify(r),
    );
  }

  get(ns: string, id: string): SandboxRecord | undefined {
    const row = this.sql('SELECT record FROM sandboxes WHERE namespace = ? AND id = ?').get(ns, id) as { record: string } | undefined;
    return row && parseSandboxRecord(row.record);
  }

  list(ns: string): SandboxRecord[] {
    return (this.sql('SELECT record FROM sandboxes WHERE namespace = ?').all(ns) as { record: string }[]).map((r) => parseSandboxRecord(r.record));
  }

  /** Ids starting with a prefix. */
  idsWithPrefix(ns: string, prefix: string): string[] {
    return (this.sql('SELECT id FROM sandboxes WHERE namespace = ? AND substr(id, 1, ?) = ?').all(ns, prefix.length, prefix) as { id: string }[]).map(
      (r) => r.id,
    );
  }

  delete(ns: string, id: string): void {
    this.gen++;
    this.sql('DELETE FROM sandboxes WHERE namespace = ? AND id = ?').run(ns, id);
  }

  update(ns: string, id: string, fn: (r: SandboxRecord) => void): SandboxRecord {
    return this.db.transaction(() => {
      const r = this.get(ns, id);
      if (!r) throw errors.notFound('sandbox.not_found', `pod sandbox ${id} not found`);
      const before = r.state;
      fn(r);
      checkSandboxTransition(id, before, r.state);
      this.put(ns, r);
      return r;
    })();
  }
}

export class ContainerStore {
  private readonly sql: ReturnType<typeof statements>;
  private gen = 0;

  /**
   * Changes with every write through this store (berthd's only writer of container records):
   * readers cache answers derived from the records under it. Writes run synchronously (inside
   * any transaction), so no reader sees a state between a write and its bump.
   */
  get generation(): number {
    return this.gen;
  }

  constructor(private readonly db: DB) {
    this.sql = statements(db);
  }

  put(ns: string, r: ContainerRecord): void {
    this.gen++;
    this.sql(
      'INSERT INTO containers (namespace, id, sandbox_id, record) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE SET record = excluded.record, sandbox_id = excluded.sandbox_id',
    ).run(ns, r.id, r.sandboxId, JSON.stringify(r));
  }

  get(ns: string, id: string): ContainerRecord | undefined {
    const row = this.sql('SELECT record FROM containers WHERE namespace = ? AND id = ?').get(ns, id) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as ContainerRecord);
  }

  list(ns: string): ContainerRecord[] {
    return (this.sql('SELECT record FROM containers WHERE namespace = ?').all(ns) as { record: string }[]).map((r) => JSON.parse(r.record) as ContainerRecord);
  }

  /** The records of a namespace as stored (JSON text), for readers that cache what they parse. */
  rows(ns: string): Array<{ id: string; record: string }> {
    return this.sql('SELECT id, record FROM containers WHERE namespace = ?').all(ns) as Array<{ id: string; record: string }>;
  }

  /** Every container in every namespace (GC roots, recovery). */
  all(): Array<{ namespace: string; record: ContainerRecord }> {
    return (this.sql('SELECT namespace, record FROM containers').all() as { namespace: string; record: string }[]).map((r) => ({
      namespace: r.namespace,
      record: JSON.parse(r.record) as ContainerRecord,
    }));
  }

  bySandbox(ns: string, sandboxId: string): ContainerRecord[] {
    return (this.sql('SELECT record FROM containers WHERE namespace = ? AND sandbox_id = ?').all(ns, sandboxId) as { record: string }[]).map(
      (r) => JSON.parse(r.record) as ContainerRecord,
    );
  }

  idsWithPrefix(ns: string, prefix: string): string[] {
    return (this.sql('SELECT id FROM containers WHERE namespace = ? AND substr(id, 1, ?) = ?').all(ns, prefix.length, prefix) as { id: string }[]).map(
      (r) => r.id,
    );
  }

  delete(ns: string, id: string): void {
    this.gen++;
    this.sql('DELETE FROM containers WHERE namespace = ? AND id = ?').run(ns, id);
  }

  /**
   * The durable point of RemoveContainer: in one transaction the record is deleted, the name
   * released and a pending removal recorded for the disk work that follows the reply.
   */
  retire(ns: string, r: ContainerRecord): void {
    const pending: PendingContainerRemoval = { id: r.id, sandboxId: r.sandboxId, snapshotKey: r.snapshotKey };
    this.gen++;
    this.db.transaction(() => {
      this.sql("INSERT OR REPLACE INTO pending_removals (namespace, kind, id, record) VALUES (?, 'container', ?, ?)").run(ns, r.id, JSON.stringify(pending));
      this.sql('DELETE FROM containers WHERE namespace = ? AND id = ?').run(ns, r.id);
      this.sql('DELETE FROM names WHERE namespace = ? AND name = ? AND holder = ?').run(ns, r.name, r.id);
    })();
  }

  /** Removals whose disk work has not finished (every namespace). */
  pendingRemovals(): Array<{ namespace: string; pending: PendingContainerRemoval }> {
    return (this.sql("SELECT namespace, record FROM pending_removals WHERE kind = 'container'").all() as { namespace: string; record: string }[]).map((r) => ({
      namespace: r.namespace,
      pending: JSON.parse(r.record) as PendingContainerRemoval,
    }));
  }

  /** The disk work of a removal is done. */
  removalDone(ns: string, id: string): void {
    this.sql("DELETE FROM pending_removals WHERE namespace = ? AND kind = 'container' AND id = ?").run(ns, id);
  }

  /** Read-modify-write in one transaction; state changes are checked against the machine. */
  update(ns: string, id: string, fn: (r: ContainerRecord) => void): ContainerRecord {
    return this.db.transaction(() => {
      const r = this.get(ns, id);
      if (!r) throw errors.notFound('container.not_found', `container ${id} not found`);
      const before = r.state;
      fn(r);
      checkContainerTransition(id, before, r.state);
      this.put(ns, r);
      return r;
    })();
  }
}

/** What is left to do for a removed container once its record is gone. */
export interface PendingContainerRemoval {
  id: string;
  sandboxId: string;
  snapshotKey: string;
}

/** Unique names for sandboxes and containers; a duplicate fails naming the holder. */
export class NameStore {
  private readonly sql: ReturnType<typeof statements>;

  constructor(private readonly db: DB) {
    this.sql = statements(db);
  }

  reserve(ns: string, name: string, holder: string): void {
    const r = this.sql('INSERT OR IGNORE INTO names (namespace, name, holder) VALUES (?, ?, ?)').run(ns, name, holder);
    if (r.changes === 0) {
      const cur = this.sql('SELECT holder FROM names WHERE namespace = ? AND name = ?').get(ns, name) as { holder: string } | undefined;
      if (cur?.holder === holder) return;
      throw errors.alreadyExists('name.reserved', `name "${name}" is reserved for ${cur?.holder ?? 'another object'}`);
    }
  }

  /** Every reservation (recovery releases those whose holder has no record). */
  list(): { namespace: string; name: string; holder: string }[] {
    return this.db.prepare('SELECT namespace, name, holder FROM names').all() as { namespace: string; name: string; holder: string }[];
  }

  release(ns: string, name: string, holder?: string): void {
    if (holder) this.sql('DELETE FROM names WHERE namespace = ? AND name = ? AND holder = ?').run(ns, name, holder);
    else this.sql('DELETE FROM names WHERE namespace = ? AND name = ?').run(ns, name);
  }
}
