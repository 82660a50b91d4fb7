/**
 * Pod and container config files (crictl style): YAML or JSON, protobuf JSON field names
 * (camelCase or the proto's snake_case). Parsed strictly so a typo names the bad field.
 */
import { readFileSync } from 'node:fs';
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { parse as parseYaml } from 'yaml';
import { ContainerConfigSchema, PodSandboxConfigSchema, type ContainerConfig, type PodSandboxConfig } from '../api/cri/runtime/v1/api_pb.js';

export class ConfigFileError extends Error {}

/** Parses YAML (a superset of JSON) text into a plain value. */
export function parseConfigText(text: string, source: string): JsonValue {
  let v: unknown;
  try {
    v = parseYaml(text, { intAsBigInt: false });
  } catch (err) {
    throw new ConfigFileError(`${source}: not valid YAML or JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigFileError(`${source}: expected an object at the top level`);
  return v as JsonValue;
}

function decode<T>(source: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    // protobuf-es says e.g. `cannot decode message runtime.v1.PodSandboxConfig from JSON: key "metdata" is unknown`.
    throw new ConfigFileError(`${source}: invalid ${what}: ${(err as Error).message}`);
  }
}

export function podConfigFromText(text: string, source: string): PodSandboxConfig {
  const obj = parseConfigText(text, source);
  return decode(source, 'pod sandbox config', () => fromJson(PodSandboxConfigSchema, obj, { ignoreUnknownFields: false }));
}

/**
 * `envs[].value` is bytes in the proto (base64 in protobuf JSON); config files write plain
 * text values, as crictl's always did: encode them before decoding the message.
 */
function envValuesAsBytes(obj: JsonValue): JsonValue {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !Array.isArray(obj.envs)) return obj;
  const envs = obj.envs.map((e) =>
    e !== null && typeof e === 'object' && !Array.isArray(e) && typeof e.value === 'string'
      ? { ...e, value: Buffer.from(e.value, 'utf8').toString('base64') }
      : e,
  );
  return { ...obj, envs };
}

export function containerConfigFromText(text: string, source: string): ContainerConfig {
  const obj = envValuesAsBytes(parseConfigText(text, source));
  return decode(source, 'container config', () => fromJson(ContainerConfigSchema, obj, { ignoreUnknownFields: false }));
}

function readSource(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function loadPodConfig(path: string): PodSandboxConfig {
  return podConfigFromText(readSource(path), path);
}

export function loadContainerConfig(path: string): ContainerConfig {
  return containerConfigFromText(readSource(path), path);
}
