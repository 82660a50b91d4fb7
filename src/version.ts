/** berth's own version (kept in step with package.json). */
export const BERTH_VERSION = '0.1.0';
