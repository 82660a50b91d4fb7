/**
 * Localhost seccomp profiles: read from the node (bounded), parsed and checked, for the pause
 * (the pod's security context) and for app containers (the container's).
 */
import { readFile } from 'node:fs/promises';
import { errors } from '../../errors.js';
import type { CodeOf } from '../../error-codes.js';
import type { LinuxSeccomp } from '../../oci/spec.js';
import { seccompChoice, validateSeccompProfile, type SeccompSource } from '../../oci/seccomp.js';

const MAX_SECCOMP_PROFILE_BYTES = 1024 * 1024;

/**
 * The profile a security context names when it asks for Localhost; undefined otherwise.
 * `field` names the security context in errors (e.g. `config.linux.security_context`).
 */
export async function loadLocalhostSeccomp(sc: SeccompSource | undefined, field: string, code: CodeOf<'InvalidArgument'>): Promise<LinuxSeccomp | undefined> {
  const choice = seccompChoice(sc, field);
  if (choice.kind !== 'localhost') return undefined;
  let text: string;
  try {
    const buf = await readFile(choice.path);
    if (buf.length > MAX_SECCOMP_PROFILE_BYTES) throw new Error(`larger than ${MAX_SECCOMP_PROFILE_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    throw errors.invalidArgument(code, `${field}.seccomp: cannot read localhost profile ${choice.path}: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw errors.invalidArgument(code, `${field}.seccomp: profile ${choice.path} is not JSON: ${(err as Error).message}`);
  }
  return validateSeccompProfile(v, `seccomp profile ${choice.path}`);
}
