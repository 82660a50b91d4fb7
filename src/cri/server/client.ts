/** A CRI client over a unix socket (used by the berth CLI, tests and benchmarks). */
import { ImageService, RuntimeService } from '../../api/cri/runtime/v1/api_pb.js';
import { createPromiseClient, unixChannel } from './grpc.js';

/** `namespace` (default k8s.io) is sent as berth-namespace metadata on every call. */
export function connectCri(socketPath: string, namespace?: string) {
  const channel = unixChannel(socketPath);
  const md: Record<string, string> = namespace ? { 'berth-namespace': namespace } : {};
  return {
    runtime: createPromiseClient(RuntimeService, channel, md),
    image: createPromiseClient(ImageService, channel, md),
    close: () => channel.close(),
  };
}

export type CriClient = ReturnType<typeof connectCri>;
