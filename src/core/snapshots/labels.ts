/**
 * The snapshot label keys berth writes, all under `berth.io/` (as containerd's are under
 * `containerd.io/`): one table, so a key is spelled once. Snapshots are stored with their
 * labels (metastore.ts); keys of earlier berthd versions are renamed by the metastore's
 * migration 2 (LEGACY_SNAPSHOT_LABELS).
 */
export const SnapshotLabel = {
  /** On a container's rootfs snapshot: the container id (container/create.ts; recovery). */
  container: 'berth.io/container',
  /** On a pause container's rootfs snapshot: the sandbox id (sandbox/run.ts; recovery). */
  sandbox: 'berth.io/sandbox',
  /** On an image volume view: the image id (container/image-volume.ts). */
  imageVolume: 'berth.io/image-volume',
  /** On a remapped (ownership-shifted) image parent: the chain it was built from (remap.ts). */
  remapOf: 'berth.io/remap-of',
  /** On the active snapshot a remapped parent is built in: the parent's name (remap.ts). */
  remapBuild: 'berth.io/remap-build',
  /** On a committed layer: its uncompressed digest (unpack/unpack-layer.ts). */
  diffId: 'berth.io/diff-id',
} as const;

/** Keys written by berthd before the one convention, and the key each is now. */
export const LEGACY_SNAPSHOT_LABELS: Readonly<Record<string, string>> = {
  'io.berth/container': SnapshotLabel.container,
  'io.berth/image-volume': SnapshotLabel.imageVolume,
};

/** `labels` with every legacy key renamed (a current key already present wins). */
export function migrateSnapshotLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    const now = LEGACY_SNAPSHOT_LABELS[k];
    if (now === undefined) out[k] = v;
    else if (!(now in labels)) out[now] = v;
  }
  return out;
}
