/**
 * CDI names (Container Device Interface spec, "Kind" and "CDI Devices"): a fully qualified
 * device name is `<vendor>/<class>=<name>`, the kind of a spec file is `<vendor>/<class>`.
 *
 * vendor and class: ASCII letters, digits, `_`, `-` and `.`, starting with a letter and
 * ending with a letter or digit. A device name: letters, digits, `_`, `-`, `.` and `:`,
 * starting and ending with a letter or digit.
 */

export interface QualifiedName {
  vendor: string;
  class: string;
  name: string;
  /** `<vendor>/<class>` */
  kind: string;
}

const isLetter = (c: string): boolean => (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
const isAlnum = (c: string): boolean => isLetter(c) || (c >= '0' && c <= '9');

/** Why `s` is not a valid vendor or class name, or undefined when it is. */
export function vendorOrClassProblem(s: string, what: 'vendor' | 'class'): string | undefined {
  if (s === '') return `empty ${what}`;
  if (!isLetter(s[0]!)) return `${what} ${JSON.stringify(s)} must start with a letter`;
  for (const c of s.slice(1, -1)) {
    if (!isAlnum(c) && c !== '_' && c !== '-' && c !== '.') return `invalid character ${JSON.stringify(c)} in ${what} ${JSON.stringify(s)}`;
  }
  if (s.length > 1 && !isAlnum(s[s.length - 1]!)) return `${what} ${JSON.stringify(s)} must end with a letter or digit`;
  return undefined;
}

/** Why `s` is not a valid device name, or undefined when it is. */
export function deviceNameProblem(s: string): string | undefined {
  if (s === '') return 'empty device name';
  if (!isAlnum(s[0]!)) return `device name ${JSON.stringify(s)} must start with a letter or digit`;
  for (const c of s.slice(1, -1)) {
    if (!isAlnum(c) && c !== '_' && c !== '-' && c !== '.' && c !== ':') return `invalid character ${JSON.stringify(c)} in device name ${JSON.stringify(s)}`;
  }
  if (s.length > 1 && !isAlnum(s[s.length - 1]!)) return `device name ${JSON.stringify(s)} must end with a letter or digit`;
  return undefined;
}

/** Splits a kind `<vendor>/<class>`; undefined parts when there is no `/`. */
export function splitKind(kind: string): { vendor: string; class: string } | undefined {
  const i = kind.indexOf('/');
  if (i <= 0 || i === kind.length - 1) return undefined;
  return { vendor: kind.slice(0, i), class: kind.slice(i + 1) };
}

/** Why `kind` is not a valid spec kind, or undefined when it is. */
export function kindProblem(kind: string): string | undefined {
  const k = splitKind(kind);
  if (!k) return `kind ${JSON.stringify(kind)} is not of the form <vendor>/<class>`;
  return vendorOrClassProblem(k.vendor, 'vendor') ?? vendorOrClassProblem(k.class, 'class');
}

/** Parses a fully qualified device name; returns the reason as a string when it is not one. */
export function parseQualifiedName(device: string): QualifiedName | string {
  const eq = device.indexOf('=');
  if (device === '' || eq < 0) return `${JSON.stringify(device)} is not a fully qualified CDI device name (vendor.com/class=name)`;
  const qualifier = device.slice(0, eq);
  const name = device.slice(eq + 1);
  const k = splitKind(qualifier);
  if (!k) return `${JSON.stringify(device)} is not a fully qualified CDI device name (vendor.com/class=name): missing vendor or class`;
  const problem = vendorOrClassProblem(k.vendor, 'vendor') ?? vendorOrClassProblem(k.class, 'class') ?? deviceNameProblem(name);
  if (problem) return `${JSON.stringify(device)} is not a valid CDI device name: ${problem}`;
  return { vendor: k.vendor, class: k.class, name, kind: qualifier };
}

/** Annotation key prefix of the older device-plugin way of asking for CDI devices. */
export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';
