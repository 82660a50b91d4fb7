/** Public surface of the registry client. */
export { RegistryClient, DEFAULT_MAX_MANIFEST_BYTES, type RegistryClientOptions, type Resolved } from './client.js';
export { RegistryHosts, endpointUrl, isLoopbackHost, type Endpoint, type MirrorConfig, type MirrorsConfig } from './hosts.js';
export { parseChallenges, userPass, credentialsForEndpoint, type Credentials, type Challenge } from './auth.js';
export { DEFAULT_RETRY, type RetryPolicy } from './transport.js';
