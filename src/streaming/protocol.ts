/** Names and header keys of Kubernetes' streaming protocols (k8s.io/apimachinery httpstream, client-go remotecommand). */

export const HEADER_PROTOCOL_VERSION = 'X-Stream-Protocol-Version';
export const HEADER_ACCEPTED_PROTOCOL_VERSIONS = 'X-Accepted-Stream-Protocol-Versions';
export const SPDY_UPGRADE = 'SPDY/3.1';

export const RC_V1 = 'channel.k8s.io';
export const RC_V2 = 'v2.channel.k8s.io';
export const RC_V3 = 'v3.channel.k8s.io';
export const RC_V4 = 'v4.channel.k8s.io';
export const RC_V5 = 'v5.channel.k8s.io';
export const PORT_FORWARD_V1 = 'portforward.k8s.io';
/** WebSocket subprotocol of kubectl's SPDY-over-WebSocket port-forward tunnel. */
export const SPDY_TUNNEL_PORTFORWARD = 'SPDY/3.1+portforward.k8s.io';

/** Remote-command protocols over SPDY, best first (v5 exists only over WebSocket). */
export const SPDY_REMOTECOMMAND_PROTOCOLS = [RC_V4, RC_V3, RC_V2, RC_V1];
export const SPDY_PORTFORWARD_PROTOCOLS = [PORT_FORWARD_V1];

/** SPDY stream header carrying the stream's role, and its values. */
export const HDR_STREAM_TYPE = 'streamtype';
export const HDR_PORT = 'port';
export const HDR_REQUEST_ID = 'requestid';
export type StreamType = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize' | 'data';

/**
 * Protocol negotiation as httpstream.Handshake does it: the first protocol in the client's
 * order that the server supports. Header values may also be comma-separated lists.
 */
export function negotiate(clientProtocols: string[], serverProtocols: string[]): string | undefined {
  const offered = clientProtocols
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
  return offered.find((p) => serverProtocols.includes(p));
}

/** True when the protocol reports exit status as a JSON metav1.Status (v4 and later). */
export function statusIsJson(protocol: string): boolean {
  return protocol === RC_V4 || protocol === RC_V5 || protocol.startsWith('v4.') || protocol.startsWith('v5.');
}

/** Resize messages exist from v3 on. */
export function supportsResize(protocol: string): boolean {
  return protocol !== RC_V1 && protocol !== RC_V2 && protocol !== '';
}
