/**
 * Container Device Interface: spec files (spec-file.ts), the node's registry of them with
 * name resolution (registry.ts), and the containerEdits applied to an OCI spec (edits.ts).
 */
export { CdiRegistry, DEFAULT_SPEC_DIRS, requestedCdiDevices, type CdiRequest, type ResolvedDevice } from './registry.js';
export { applyCdiEdits, type CdiHost } from './edits.js';
export { parseSpecText, requiredVersion, SpecFileError, CDI_VERSIONS, MAX_SPEC_BYTES, type CdiSpec } from './spec-file.js';
export { parseQualifiedName, CDI_ANNOTATION_PREFIX } from './names.js';
