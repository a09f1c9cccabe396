/**
 * A single-member etcd run as a child process, for `redfleet dev`, the tests and the benchmarks.
 * The product never starts etcd itself: a real fleet is pointed at one with --etcd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectEtcd } from '../store/etcd.js';
import { freePort } from '../net.js';
import { childGone, stopChild } from './child-process.js';

export interface EtcdServer {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * What keeps a long-running dev etcd from filling up (docs/hardening/growth.md): etcd's own
 * periodic compaction as a belt to the leader's Compactor, a 4 GiB backend quota instead of
 * 2 GiB, and clients allowed to send gRPC keepalive pings every second (etcd's default minimum
 * is 5 s and it drops a client that pings more often with "too_many_pings"; the agents' etcd
 * keepalive must notice a dead link within a few seconds). Extend this list for new limits.
 */
export const GROWTH_LIMITS: readonly string[] = [
  '--auto-compaction-mode', 'periodic',
  '--auto-compaction-retention', '5m',
  '--quota-backend-bytes', String(4 * 1024 ** 3),
  '--grpc-keepalive-min-time', '500ms',
];

/**
 * Starts a single-member etcd (Debian's etcd-server) as a child process on free loopback ports,
 * with its data under `dataDir`, and resolves once it answers. Used by `redfleet dev` and tests.
 */
export async function startEtcdServer(dataDir: string, opts: { clientPort?: number; binary?: string; extraHosts?: string[]; extraArgs?: string[] } = {}): Promise<EtcdServer> {
  mkdirSync(dataDir, { recursive: true });
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  // Also serve on other local addresses (a test bridge that network-namespaced agents reach).
  const urls = [url, ...(opts.extraHosts ?? []).map((h) => `http://${h}:${clientPort}`)].join(',');
  const peer = `http://127.0.0.1:${peerPort}`;
  const logFd = openSync(join(dataDir, 'etcd.log'), 'a');
  const child = spawn(
    opts.binary ?? 'etcd',
    [
      '--name', 'redfleet',
      '--data-dir', join(dataDir, 'data'),
      '--listen-client-urls', urls,
      '--advertise-client-urls', urls,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `redfleet=${peer}`,
      '--log-level', 'warn',
      ...GROWTH_LIMITS,
      ...(opts.extraArgs ?? []),
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  const stop = (): Promise<void> => stopChild(child, 'SIGTERM', 5000);
  const client = connectEtcd(url);
  try {
    for (let i = 0; ; i++) {
      if (childGone(child)) throw new Error(`etcd exited at start; see ${join(dataDir, 'etcd.log')}`);
      try {
        await client.get('/health-probe').string();
        break;
      } catch (err) {
        if (i > 200) throw err;
        await sleep(50);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    client.close();
  }
  return { url, child, stop };
}
