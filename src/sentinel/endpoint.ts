import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../logger.js';
import type { SentinelSource } from '../domain/services.js';
import { ProtocolError } from '../errors.js';
import { RespParser, error } from './resp.js';
import { RefusalLog, addressBucket, closeWith, writeReplies, type Client } from './connection.js';
import { deliver, eventInstance, subscriptions } from './pubsub.js';
import { SentinelCommands } from './commands.js';

/** Limits of the endpoint; see docs/hardening/sentinel.md for why these defaults. */
export interface SentinelEndpointOptions {
  /** Connections the endpoint holds at once (default 10,000). */
  maxClients?: number;
  /** Connections from one IPv4 address or one IPv6 /64 (default 1,000). */
  maxClientsPerAddress?: number;
  /** A connection that sent nothing for this long is closed unless it is subscribed; 0 = never (default 300 s). */
  idleTimeoutMs?: number;
  /** When set, every command but AUTH, HELLO, QUIT and RESET needs AUTH first, as with Sentinel's requirepass. */
  password?: string;
  /** Channels, and separately patterns, one client may subscribe to (default 64 each). */
  maxSubscriptions?: number;
}

export const SENTINEL_DEFAULTS = {
  maxClients: 10_000,
  maxClientsPerAddress: 1_000,
  idleTimeoutMs: 300_000,
  maxSubscriptions: 64,
} as const;

/**
 * The Sentinel-compatible endpoint: enough of the Sentinel protocol that any Sentinel-aware
 * client finds an instance's current master by its name and follows failovers.
 *
 * Anyone who can reach the port can talk to it, so nothing a client sends may cost the
 * scheduler more than a bounded amount of time or memory (issue 7, A1-A3): globs are matched
 * in linear-ish time, requests are parsed incrementally and capped, and connections are capped
 * per endpoint and per address and closed when idle.
 */
export class SentinelEndpoint {
  private readonly server: Server;
  private readonly clients = new Set<Client>();

  /** Connections open now (for redfleet_sentinel_clients). */
  get clientCount(): number {
    return this.clients.size;
  }
  private readonly perAddress = new Map<string, number>();
  private readonly refusals: RefusalLog;
  private readonly commands: SentinelCommands;
  private nextId = 1;
  private readonly onEvent = (channel: string, message: string) => this.publish(channel, message);
  private readonly limits: Required<Omit<SentinelEndpointOptions, 'password'>>;

  constructor(private readonly source: SentinelSource, private readonly log: Logger, opts: SentinelEndpointOptions = {}) {
    this.limits = {
      maxClients: opts.maxClients ?? SENTINEL_DEFAULTS.maxClients,
      maxClientsPerAddress: opts.maxClientsPerAddress ?? SENTINEL_DEFAULTS.maxClientsPerAddress,
      idleTimeoutMs: opts.idleTimeoutMs ?? SENTINEL_DEFAULTS.idleTimeoutMs,
      maxSubscriptions: opts.maxSubscriptions ?? SENTINEL_DEFAULTS.maxSubscriptions,
    };
    this.refusals = new RefusalLog(log);
    this.commands = new SentinelCommands(source, this.refusals, this.limits.maxSubscriptions, opts.password);
    this.server = createServer((socket) => this.accept(socket));
    source.events.on('event', this.onEvent);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  async close(): Promise<void> {
    this.source.events.off('event', this.onEvent);
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(socket: Socket): void {
    const address = addressBucket(socket.remoteAddress);
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (this.clients.size >= this.limits.maxClients || fromAddress >= this.limits.maxClientsPerAddress) {
      this.refusals.refused('connection refused: max number of clients reached', { address, clients: this.clients.size, fromAddress });
      socket.on('error', () => undefined);
      closeWith(socket, error('ERR max number of clients reached'));
      return;
    }
    const client: Client = {
      id: this.nextId++, socket, address, resp3: false, name: '', authenticated: !this.commands.needsAuth, channels: new Set(), patterns: new Map(),
    };
    this.clients.add(client);
    this.perAddress.set(address, fromAddress + 1);
    socket.setNoDelay(true);
    if (this.limits.idleTimeoutMs > 0) socket.setTimeout(this.limits.idleTimeoutMs);
    socket.on('timeout', () => this.idle(client));
    this.serve(client);
    socket.on('error', () => undefined);
    socket.on('close', () => this.forget(client));
  }

  /** Reads the client's requests incrementally and answers each in order. */
  private serve(client: Client): void {
    const { socket, address } = client;
    const parser = new RespParser();
    socket.on('data', (chunk: Buffer) => {
      let commands: string[][];
      try {
        commands = parser.push(chunk);
      } catch (err) {
        const message = err instanceof ProtocolError ? err.message : 'protocol error';
        this.refusals.refused('protocol error: connection closed', { address, client: client.id, error: message });
        closeWith(socket, error(`ERR Protocol error: ${message}`));
        return;
      }
      for (const args of commands) {
        if (socket.destroyed) return;
        writeReplies(client, this.commands.dispatch(client, args));
        if (args[0].toUpperCase() === 'QUIT') socket.end();
      }
    });
  }

  /** Socket timeout: only activity-free, unsubscribed connections are closed. */
  private idle(client: Client): void {
    if (subscriptions(client) > 0) {
      client.socket.setTimeout(this.limits.idleTimeoutMs);
      return;
    }
    client.socket.destroy();
  }

  private forget(client: Client): void {
    if (!this.clients.delete(client)) return;
    const left = (this.perAddress.get(client.address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(client.address, left);
    else this.perAddress.delete(client.address);
  }

  private publish(channel: string, message: string): void {
    this.log.info('sentinel event', { instance: eventInstance(message), channel, event: message });
    deliver(this.clients, channel, message);
  }
}
