/**
 * Sandbox and container records, stored as JSON documents in the metadata database (the
 * CRI config itself is kept as protobuf bytes, base64, so no field is ever lost), plus the
 * name reservations that make RunPodSandbox/CreateContainer names unique.
 */
import { errors } from '../../errors.js';
import type { DB } from './db.js';

export type SandboxState = 'ready' | 'notready';

export interface SandboxRecord {
  id: string;
  /** The reserved name (k8s_POD_name_namespace_uid_attempt). */
  name: string;
  meta: { name: string; namespace: string; uid: string; attempt: number };
  state: SandboxState;
  /** Unix nanoseconds, as a decimal string. */
  createdAt: string;
  runtimeHandler: string;
  /** runtime.v1.PodSandboxConfig, protobuf bytes in base64. */
  config: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  netnsPath?: string;
  ips: string[];
  /** Pause process pid (host pid namespace) while running. */
  pid?: number;
  /** Directory holding hostname, hosts, resolv.conf, shm. */
  sandboxDir: string;
  cgroupParent: string;
  /** CNI outcome kept for DEL and for status. */
  cni?: { result?: unknown; portMappings?: unknown[] };
  /** Anything handler-specific (shim address, spans…). */
  extra: Record<string, unknown>;
}

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
  constructor(private readonly db: DB) {}

  put(ns: string, r: SandboxRecord): void {
    this.db
      .prepare('INSERT INTO sandboxes (namespace, id, record) VALUES (?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE SET record = excluded.record')
      .run(ns, r.id, JSON.stringify(r));
  }

  get(ns: string, id: string): SandboxRecord | undefined {
    const row = this.db.prepare('SELECT record FROM sandboxes WHERE namespace = ? AND id = ?').get(ns, id) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as SandboxRecord);
  }

  list(ns: string): SandboxRecord[] {
    return (this.db.prepare('SELECT record FROM sandboxes WHERE namespace = ?').all(ns) as { record: string }[]).map((r) => JSON.parse(r.record) as SandboxRecord);
  }

  /** Ids starting with a prefix. */
  idsWithPrefix(ns: string, prefix: string): string[] {
    return (this.db.prepare('SELECT id FROM sandboxes WHERE namespace = ? AND substr(id, 1, ?) = ?').all(ns, prefix.length, prefix) as { id: string }[]).map((r) => r.id);
  }

  delete(ns: string, id: string): void {
    this.db.prepare('DELETE FROM sandboxes WHERE namespace = ? AND id = ?').run(ns, id);
  }

  update(ns: string, id: string, fn: (r: SandboxRecord) => void): SandboxRecord {
    return this.db.transaction(() => {
      const r = this.get(ns, id);
      if (!r) throw errors.notFound('sandbox.not_found', `pod sandbox ${id} not found`);
      fn(r);
      this.put(ns, r);
      return r;
    })();
  }
}

export class ContainerStore {
  constructor(private readonly db: DB) {}

  put(ns: string, r: ContainerRecord): void {
    this.db
      .prepare(
        'INSERT INTO containers (namespace, id, sandbox_id, record) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, id) DO UPDATE SET record = excluded.record, sandbox_id = excluded.sandbox_id',
      )
      .run(ns, r.id, r.sandboxId, JSON.stringify(r));
  }

  get(ns: string, id: string): ContainerRecord | undefined {
    const row = this.db.prepare('SELECT record FROM containers WHERE namespace = ? AND id = ?').get(ns, id) as { record: string } | undefined;
    return row && (JSON.parse(row.record) as ContainerRecord);
  }

  list(ns: string): ContainerRecord[] {
    return (this.db.prepare('SELECT record FROM containers WHERE namespace = ?').all(ns) as { record: string }[]).map((r) => JSON.parse(r.record) as ContainerRecord);
  }

  /** Every container in every namespace (GC roots, recovery). */
  all(): Array<{ namespace: string; record: ContainerRecord }> {
    return (this.db.prepare('SELECT namespace, record FROM containers').all() as { namespace: string; record: string }[]).map((r) => ({
      namespace: r.namespace,
      record: JSON.parse(r.record) as ContainerRecord,
    }));
  }

  bySandbox(ns: string, sandboxId: string): ContainerRecord[] {
    return (this.db.prepare('SELECT record FROM containers WHERE namespace = ? AND sandbox_id = ?').all(ns, sandboxId) as { record: string }[]).map(
      (r) => JSON.parse(r.record) as ContainerRecord,
    );
  }

  idsWithPrefix(ns: string, prefix: string): string[] {
    return (this.db.prepare('SELECT id FROM containers WHERE namespace = ? AND substr(id, 1, ?) = ?').all(ns, prefix.length, prefix) as { id: string }[]).map((r) => r.id);
  }

  delete(ns: string, id: string): void {
    this.db.prepare('DELETE FROM containers WHERE namespace = ? AND id = ?').run(ns, id);
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

/** Unique names for sandboxes and containers; a duplicate fails naming the holder. */
export class NameStore {
  constructor(private readonly db: DB) {}

  reserve(ns: string, name: string, holder: string): void {
    const r = this.db.prepare('INSERT OR IGNORE INTO names (namespace, name, holder) VALUES (?, ?, ?)').run(ns, name, holder);
    if (r.changes === 0) {
      const cur = this.db.prepare('SELECT holder FROM names WHERE namespace = ? AND name = ?').get(ns, name) as { holder: string } | undefined;
      if (cur?.holder === holder) return;
      throw errors.alreadyExists('name.reserved', `name "${name}" is reserved for ${cur?.holder ?? 'another object'}`);
    }
  }

  /** Every reservation (recovery releases those whose holder has no record). */
  list(): { namespace: string; name: string; holder: string }[] {
    return this.db.prepare('SELECT namespace, name, holder FROM names').all() as { namespace: string; name: string; holder: string }[];
  }

  release(ns: string, name: string, holder?: string): void {
    if (holder) this.db.prepare('DELETE FROM names WHERE namespace = ? AND name = ? AND holder = ?').run(ns, name, holder);
    else this.db.prepare('DELETE FROM names WHERE namespace = ? AND name = ?').run(ns, name);
  }
}
