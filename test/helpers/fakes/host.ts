/**
 * The pod network (NetworkPort: CNI ADD/DEL) and the pod's kernel objects (PodHostPort: pins,
 * netns handle, shm) in memory. What is "live" is kept in sets, so a test asserts that nothing
 * is left (no IP, no pin, no mount) the way the integration tests read the host.
 */
import type { NetworkPort, PodHostPort } from '../../../src/cri/server/ports.js';
import type { PinRequest, PodNetworkRequest, PodNetworkResult, PodPins, TeardownRequest } from '../../../src/network/index.js';
import type { Faults } from './faults.js';

export class FakeNetwork implements NetworkPort {
  /** Sandbox id → IP, while attached. */
  readonly attached = new Map<string, string>();
  private next = 2;
  constructor(private readonly faults: Faults) {}

  async setupPod(req: PodNetworkRequest): Promise<PodNetworkResult> {
    // The IP is taken when the ADD starts (an ADD cut short may have reserved it).
    const ip = `198.18.0.${this.next++}`;
    this.attached.set(req.id, ip);
    await this.faults.hit('cni.add');
    return {
      network: 'fake',
      ips: [`${ip}/16`],
      interfaces: [],
      routes: [],
      dns: { nameservers: [], search: [], options: [] },
      raw: { cniVersion: '1.0.0' },
      spans: [],
    };
  }

  async teardownPod(req: TeardownRequest): Promise<{ spans: [] }> {
    await this.faults.hit('cni.del');
    this.attached.delete(req.id);
    return { spans: [] };
  }
}

export class FakePods implements PodHostPort {
  /** Pinned handles and netns paths that exist. */
  readonly pinned = new Set<string>();
  /** Mounted shm paths. */
  readonly shm = new Set<string>();
  constructor(private readonly faults: Faults) {}

  async pin(req: PinRequest): Promise<PodPins> {
    await this.faults.hit('pods.pin');
    const pins: PodPins = {};
    if (req.userns) pins.user = `${req.dir}/${req.id}.user`;
    if (req.net) pins.net = `${req.dir}/${req.id}`;
    if (req.ipc) pins.ipc = `${req.dir}/${req.id}.ipc`;
    if (req.uts) pins.uts = `${req.dir}/${req.id}.uts`;
    for (const p of Object.values(pins)) this.pinned.add(p);
    return pins;
  }

  async unpin(pins: PodPins): Promise<void> {
    await this.faults.hit('pods.unpin');
    for (const p of Object.values(pins)) if (p) this.pinned.delete(p);
  }

  async alive(pins: PodPins): Promise<boolean> {
    return Object.values(pins).every((p) => p !== undefined && this.pinned.has(p));
  }

  async removeNetns(path: string): Promise<void> {
    await this.faults.hit('pods.remove-netns');
    this.pinned.delete(path);
  }

  async mountShm(path: string): Promise<void> {
    await this.faults.hit('pods.mount-shm');
    this.shm.add(path);
  }

  async unmountShm(path: string): Promise<void> {
    await this.faults.hit('pods.unmount-shm');
    this.shm.delete(path);
  }
}
