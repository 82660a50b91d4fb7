/** The /metrics HTTP endpoint (plain HTTP; bind it to loopback). */
import { createServer, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CONTENT_TYPE, type Registry } from './registry.js';

export interface MetricsEndpoint {
  /** host:port actually bound (port 0 resolved). */
  address: string;
  close(): Promise<void>;
}

/** Split "host:port" / "[v6]:port". */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`metrics address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1]!, port };
}

export async function serveMetrics(registry: Registry, address: string): Promise<MetricsEndpoint> {
  const { host, port } = parseHostPort(address);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    const body = registry.render();
    res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Name of the file in the state dir that holds the bound metrics address (tests, tools). */
export const METRICS_ADDRESS_FILE = 'metrics.addr';

/**
 * Start the endpoint for berthd: '' disables it; a bind failure is logged and berthd carries
 * on without metrics (a busy port must not keep the runtime down). The bound address is
 * logged and written to <stateDir>/metrics.addr.
 */
export async function startMetricsEndpoint(
  registry: Registry,
  address: string,
  stateDir: string,
  log: { info(msg: string, f?: Record<string, unknown>): void; warn(msg: string, f?: Record<string, unknown>): void },
): Promise<MetricsEndpoint | undefined> {
  if (!address) return undefined;
  try {
    const ep = await serveMetrics(registry, address);
    await writeFile(join(stateDir, METRICS_ADDRESS_FILE), `${ep.address}\n`);
    log.info('metrics endpoint serving', { address: ep.address, path: '/metrics' });
    return ep;
  } catch (err) {
    log.warn('metrics endpoint not started', { address, error: (err as Error).message });
    return undefined;
  }
}
