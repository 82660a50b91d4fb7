/** The CRI log writer lives in core/logs (berthd uses it too); re-exported for the shim. */
export * from '../core/logs/crilog.js';
