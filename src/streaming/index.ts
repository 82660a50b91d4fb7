/** Public surface of the streaming server (exec / attach / port-forward over SPDY/3.1 and WebSocket). */
export { StreamingServer, DEFAULT_LIMITS, type StreamingLimits, type StreamingServerOptions } from './server.js';
export type { AttachRequest, ExecRequest, PortForwardRequest, StreamIO, StreamingBackend, TerminalSize } from './types.js';
