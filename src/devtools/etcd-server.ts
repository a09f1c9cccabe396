/**
 * etcd run as child processes, one member or a cluster, for `redfleet dev`, the tests and the
 * benchmarks. The product never starts etcd itself: a real fleet is pointed at one with --etcd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectEtcd } from '../store/etcd.js';
import { freePort } from '../net.js';
import { childGone, stopChild } from './child-process.js';

export interface EtcdMember {
  name: string;
  /** This member's client URL(s), comma-separated. */
  url: string;
  child: ChildProcess;
  /** Its data directory (the etcd.log is there too). */
  dir: string;
  stop(): Promise<void>;
}

export interface EtcdServer {
  /** Every member's client URL, comma-separated: what `--etcd` takes. */
  url: string;
  /** The first member's process (the only one for a single member). */
  child: ChildProcess;
  members: EtcdMember[];
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

interface MemberPlan {
  name: string;
  dir: string;
  clientUrls: string;
  peer: string;
}

/**
 * Starts a single-member etcd (Debian's etcd-server) as a child process on free loopback ports,
 * with its data under `dataDir`, and resolves once it answers. Used by `redfleet dev` and tests.
 */
export async function startEtcdServer(dataDir: string, opts: { clientPort?: number; binary?: string; extraHosts?: string[]; extraArgs?: string[] } = {}): Promise<EtcdServer> {
  const clientPort = opts.clientPort ?? (await freePort());
  const hosts = ['127.0.0.1', ...(opts.extraHosts ?? [])];
  // Also serve on other local addresses (a test bridge that network-namespaced agents reach).
  const plan: MemberPlan = { name: 'redfleet', dir: dataDir, clientUrls: hosts.map((h) => `http://${h}:${clientPort}`).join(','), peer: `http://127.0.0.1:${await freePort()}` };
  return startMembers([plan], opts);
}

/**
 * Starts an etcd cluster of `size` members on loopback (member i under `<dataDir>/m<i>`), as an
 * operator would run three, and resolves once every member answers. For the tests and
 * benchmarks that lose a member (docs/scale.md).
 */
export async function startEtcdCluster(dataDir: string, size: number, opts: { binary?: string; extraArgs?: string[] } = {}): Promise<EtcdServer> {
  const plans: MemberPlan[] = [];
  for (let i = 1; i <= size; i++) {
    plans.push({ name: `m${i}`, dir: join(dataDir, `m${i}`), clientUrls: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  }
  return startMembers(plans, opts);
}

async function startMembers(plans: MemberPlan[], opts: { binary?: string; extraArgs?: string[] }): Promise<EtcdServer> {
  const initialCluster = plans.map((p) => `${p.name}=${p.peer}`).join(',');
  const members = plans.map((p) => spawnMember(p, initialCluster, opts));
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.stop()));
  };
  try {
    await Promise.all(members.map((m) => awaitAnswer(m)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: members.map((m) => m.url).join(','), child: members[0].child, members, stop };
}

function spawnMember(p: MemberPlan, initialCluster: string, opts: { binary?: string; extraArgs?: string[] }): EtcdMember {
  mkdirSync(p.dir, { recursive: true });
  const logFd = openSync(join(p.dir, 'etcd.log'), 'a');
  const child = spawn(
    opts.binary ?? 'etcd',
    [
      '--name', p.name,
      '--data-dir', join(p.dir, 'data'),
      '--listen-client-urls', p.clientUrls,
      '--advertise-client-urls', p.clientUrls,
      '--listen-peer-urls', p.peer,
      '--initial-advertise-peer-urls', p.peer,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--log-level', 'warn',
      ...GROWTH_LIMITS,
      ...(opts.extraArgs ?? []),
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  return { name: p.name, url: p.clientUrls.split(',')[0], child, dir: p.dir, stop: () => stopChild(child, 'SIGTERM', 5000) };
}

/** Resolves once the member answers a read (a cluster's members answer once a quorum is up). */
async function awaitAnswer(member: EtcdMember): Promise<void> {
  const client = connectEtcd(member.url);
  try {
    for (let i = 0; ; i++) {
      if (childGone(member.child)) throw new Error(`etcd ${member.name} exited at start; see ${join(member.dir, 'etcd.log')}`);
      try {
        await client.get('/health-probe').string();
        return;
      } catch (err) {
        if (i > 200) throw err;
        await sleep(50);
      }
    }
  } finally {
    client.close();
  }
}
