import { execFileSync } from 'node:child_process';

/**
 * Test hosts in network namespaces on one Linux bridge: each host is a namespace with a veth
 * into the bridge and its own address in a private /24 that exists only on this machine. The
 * host side of the bridge has `.1`, where etcd and the scheduler listen. `partition` takes a
 * host's link down (nothing crosses, no RST either, like a pulled cable) and `heal` brings it back.
 * Needs root and iproute2.
 */
export class TestNetwork {
  readonly bridge: string;
  readonly prefix: string;
  private readonly hosts = new Map<string, { ns: string; veth: string; ip: string }>();

  private constructor(readonly subnet: number) {
    this.bridge = `rfbr${subnet}`;
    this.prefix = `10.213.${subnet}`;
  }

  get hostIp(): string {
    return `${this.prefix}.1`;
  }

  static create(): TestNetwork {
    const net = new TestNetwork(10 + Math.floor(Math.random() * 240));
    ip('link', 'add', net.bridge, 'type', 'bridge');
    ip('addr', 'add', `${net.hostIp}/24`, 'dev', net.bridge);
    ip('link', 'set', net.bridge, 'up');
    return net;
  }

  /** A new test host; returns its namespace name and address. */
  addHost(name: string): { ns: string; ip: string } {
    const n = this.hosts.size + 10;
    const ns = `rf${this.subnet}-${name}`.slice(0, 15);
    const outside = `rfv${this.subnet}h${n}`;
    const inside = `rfv${this.subnet}n${n}`;
    const address = `${this.prefix}.${n}`;
    ip('netns', 'add', ns);
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
    ip('link', 'set', inside, 'netns', ns);
    ip('link', 'set', outside, 'master', this.bridge);
    ip('link', 'set', outside, 'up');
    ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', inside);
    ip('-n', ns, 'link', 'set', inside, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    this.hosts.set(name, { ns, veth: outside, ip: address });
    return { ns, ip: address };
  }

  namespaceOf(name: string): string {
    return this.host(name).ns;
  }

  partition(name: string): void {
    ip('link', 'set', this.host(name).veth, 'down');
  }

  heal(name: string): void {
    ip('link', 'set', this.host(name).veth, 'up');
  }

  private host(name: string) {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no test host ${name}`);
    return h;
  }

  destroy(): void {
    for (const h of this.hosts.values()) {
      tryIp('link', 'del', h.veth);
      tryIp('netns', 'del', h.ns);
    }
    this.hosts.clear();
    tryIp('link', 'del', this.bridge);
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tryIp(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // already gone
  }
}
