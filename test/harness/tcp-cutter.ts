import { createServer, connect, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream?: Socket;
  /** Bytes from the client not yet sent on (a connection opened during a cut). */
  pending: Buffer[];
  /** Connected before a cut: silent for good, dropped at the heal like a timed-out peer. */
  dead: boolean;
}

/**
 * A TCP relay to one upstream port that can be cut like a pulled cable: while cut, nothing
 * crosses in either direction and nothing is reset. Connections made during the cut are held
 * (their bytes kept) and go through at the heal, like a SYN retried after the link returns;
 * connections from before the cut are dropped at the heal.
 */
export class TcpCutter {
  private readonly pairs = new Set<Pair>();
  private cutNow = false;

  private constructor(private readonly server: Server, private readonly upstreamPort: number) {}

  static async start(upstreamPort: number): Promise<TcpCutter> {
    const server = createServer();
    const cutter = new TcpCutter(server, upstreamPort);
    server.on('connection', (sock) => cutter.accept(sock));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return cutter;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  cut(): void {
    this.cutNow = true;
    for (const pair of this.pairs) if (pair.upstream) pair.dead = true;
  }

  heal(): void {
    this.cutNow = false;
    for (const pair of this.pairs) {
      if (pair.dead) this.drop(pair);
      else if (!pair.upstream) this.openUpstream(pair);
    }
  }

  async stop(): Promise<void> {
    for (const pair of this.pairs) this.drop(pair);
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, pending: [], dead: false };
    this.pairs.add(pair);
    client.on('data', (d: Buffer) => {
      if (pair.dead) return;
      if (!pair.upstream) pair.pending.push(d);
      else if (!this.cutNow) pair.upstream.write(d);
    });
    client.on('error', () => this.drop(pair));
    client.on('close', () => this.drop(pair));
    if (!this.cutNow) this.openUpstream(pair);
  }

  private openUpstream(pair: Pair): void {
    const upstream = connect({ host: '127.0.0.1', port: this.upstreamPort });
    pair.upstream = upstream;
    upstream.on('data', (d: Buffer) => {
      if (!pair.dead && !this.cutNow) pair.client.write(d);
    });
    upstream.on('error', () => this.drop(pair));
    upstream.on('close', () => this.drop(pair));
    for (const chunk of pair.pending) upstream.write(chunk);
    pair.pending = [];
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
