/**
 * cgroupsPath for runc from the pod's cgroup_parent.
 *
 * cgroupfs driver: "<parent>/<id>" (e.g. /kubepods/burstable/pod<uid>/<id>).
 * systemd driver (parent ends in ".slice"): runc's "slice:prefix:name" form.
 */
import { posix } from 'node:path';
import { invalid } from './values.js';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function cgroupsPath(parent: string, id: string, field: string): string {
  if (!ID_RE.test(id)) throw invalid('id', `invalid container id ${JSON.stringify(id)}`);
  if (parent.includes('\0')) throw invalid(field, 'must not contain NUL');
  const base = posix.basename(parent);
  if (base.endsWith('.slice')) {
    if (!/^[A-Za-z0-9_.\\-]+\.slice$/.test(base)) throw invalid(field, `invalid systemd slice ${JSON.stringify(parent)}`);
    return `${base}:berth:${id}`;
  }
  if (!parent.startsWith('/')) throw invalid(field, `${JSON.stringify(parent)} must be an absolute cgroup path`);
  if (parent.split('/').includes('..')) throw invalid(field, `${JSON.stringify(parent)} must not contain ".."`);
  return posix.join(posix.normalize(parent), id);
}
