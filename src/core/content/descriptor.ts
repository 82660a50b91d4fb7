/** The OCI descriptor type is shared by all image code; it is defined once, in core/images. */
export type { Descriptor, Platform } from '../images/descriptor.js';
