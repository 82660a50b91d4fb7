/** Public surface of berth's ttrpc implementation (containerd/ttrpc wire protocol, unary calls). */

export { TtrpcClient, type CallOptions, type ClientOptions } from './client.js';
export { TtrpcServer, ensurePrivateDir, type CallContext, type ListenTarget, type MethodHandler, type ServerOptions } from './server.js';
export { registerService, createClient, type ServiceImpl, type ServiceClient } from './service.js';
export { peerCredentials, requireSameUser, requireUid, allowAnyPeer, type PeerCheck, type PeerCredentials } from './peercred.js';
export type { Metadata, MetadataInit } from './metadata.js';
export { MESSAGE_LENGTH_MAX, HEADER_LENGTH, MessageType, Flags } from './frame.js';
