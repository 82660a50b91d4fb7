/** Public surface of pod networking: network namespaces and CNI. */
export { createNetns, removeNetns, isNetns, verifyNetns, listNetns, ensureNetnsDir, NetnsDirs, DEFAULT_NETNS_DIR } from './netns.js';
export type { CreateNetnsOptions } from './netns.js';
export { CniManager, NETWORK_NOT_READY_REASON } from './cni.js';
export type { CniManagerOptions, PodNetworkRequest, PodNetworkResult, TeardownRequest, NetworkStatus, PluginSpan } from './cni.js';
export type { PortMapping, BandwidthConfig, DnsConfig } from './cni-args.js';
export { CniPluginError, CniErrorCode } from './cni-exec.js';
export type { CniCommand } from './cni-exec.js';
export type { CniResult, CniInterface, CniIpConfig, CniRoute, CniDns } from './cni-result.js';
export type { NetworkConfigList, PluginConfig } from './cni-config.js';
export { pinNamespaces, unpinNamespaces, pinPaths, pinsAlive, listPinnedIds, PinPool, PIN_KINDS } from './pin.js';
export type { PinKind, PinRequest, PodPins, IdMapping } from './pin.js';
