import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, isRecoverableError } from 'etcd3';

type EtcdOptions = NonNullable<ConstructorParameters<typeof Etcd3>[0]>;
type FaultHandling = NonNullable<EtcdOptions['faultHandling']>;
type HostPolicy = ReturnType<NonNullable<FaultHandling['host']>>;
type Backoff = NonNullable<FaultHandling['watchBackoff']>;

/**
 * gRPC keepalive on every etcd connection. Without it a connection that went silent (a
 * partition, a pulled cable) is noticed only by TCP retransmission timeouts, minutes later,
 * and a watch on it just stops delivering: an agent cut off from etcd then misses its SHUTDOWN
 * long after the heal. A ping every second, answered within 2 s, notices a dead connection
 * within about 3 s. etcd refuses pings more often than its --grpc-keepalive-min-time (5 s by
 * default) with GOAWAY "too_many_pings", so etcd must run with --grpc-keepalive-min-time below
 * 1 s (startEtcdServer does; docs/hardening/executor.md tells operators).
 *
 * Pings go only while a call or stream is open. etcd refuses any ping on a connection with
 * none, whatever its min-time, and the GOAWAYs that followed churned a loaded scheduler's
 * connections until its start failed (docs/BENCHMARKS.md, scale, eighth round). Every long-lived
 * client holds a stream anyway: an agent's and a scheduler's lease keepalive, their watches.
 */
export const ETCD_KEEPALIVE = { timeMs: 1000, timeoutMs: 2000 } as const;

/**
 * How soon a broken etcd connection is dialled again, and a broken watch stream re-opened.
 * The library defaults back off to 30 s (watches) and park a host for 5 s after three failures
 * (circuit breaker), so after a heal an agent could wait that long before it sees a message
 * written meanwhile. A local etcd is cheap to retry: never wait more than a quarter of a second
 * (with 500 ms, a SHUTDOWN written during a cut reached a loaded agent 1.1 s after the heal).
 */
export const ETCD_RETRY = { firstMs: 50, maxMs: 250 } as const;

/** The largest answer an etcd client accepts. */
export const ETCD_MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** The URLs each client of connectEtcd was made with (for RangeReader: see tree-read.ts). */
const urlsOf = new WeakMap<Etcd3, string[]>();

/** The URLs `etcd` was made with by connectEtcd; none for a client made otherwise. */
export function etcdUrls(etcd: Etcd3): string[] {
  return urlsOf.get(etcd) ?? [];
}

/** `urls` is the comma-separated list the commands take: `http://127.0.0.1:2379,http://...`. */
export function connectEtcd(urls: string): Etcd3 {
  const hosts = urls.split(',').map((u) => u.trim()).filter(Boolean);
  if (hosts.length === 0) throw new Error('no etcd URL given; pass --etcd http://127.0.0.1:2379');
  const client = new Etcd3({
    hosts,
    dialTimeout: 3000,
    grpcOptions: {
      'grpc.keepalive_time_ms': ETCD_KEEPALIVE.timeMs,
      'grpc.keepalive_timeout_ms': ETCD_KEEPALIVE.timeoutMs,
      'grpc.keepalive_permit_without_calls': 0,
      // A scheduler's start reads the tree in pages of up to 16 MiB (tree-read.ts); gRPC's default is 4 MiB.
      'grpc.max_receive_message_length': ETCD_MAX_ANSWER_BYTES,
      'grpc.initial_reconnect_backoff_ms': ETCD_RETRY.firstMs * 2,
      'grpc.max_reconnect_backoff_ms': ETCD_RETRY.maxMs,
    },
    faultHandling: {
      host: () => passThrough,
      watchBackoff: doublingBackoff(ETCD_RETRY.firstMs, ETCD_RETRY.maxMs),
    },
  });
  urlsOf.set(client, hosts);
  return client;
}

/**
 * Runs `step` again while it fails on the connection (the errors etcd3 counts as recoverable:
 * UNAVAILABLE, CANCELLED and the like) rather than on the request, up to `attempts` times,
 * `pauseMs` apart; any other error, or the last one, is thrown. A scheduler starting beside a
 * loaded etcd saw its etcd connection dropped and re-made seven times in 3 s, and one drop in its
 * start (the watches) ended the process (docs/BENCHMARKS.md, scale, eighth round).
 */
export async function retryingConnection<T>(step: () => Promise<T>, onRetry: (err: Error, attempt: number) => void, attempts = 40, pauseMs = 250): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (attempt >= attempts || !(err instanceof Error) || !isRecoverableError(err)) throw err;
      onRetry(err, attempt);
      await sleep(pauseMs);
    }
  }
}

/**
 * A host policy that lets every call through (no circuit breaker). The client's global retry
 * still applies, and each failure makes the library dial the host afresh.
 */
const passThrough: HostPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
};

/** firstMs, 2 x firstMs, ... up to maxMs; the watch manager starts over after a success. */
function doublingBackoff(durationMs: number, maxMs: number): Backoff {
  return {
    duration: durationMs,
    next: () => doublingBackoff(Math.min(durationMs * 2, maxMs), maxMs),
  };
}

/**
 * The `op` label of redfleet_etcd_request_duration_seconds: a small fixed set, from the gRPC
 * method the client calls. Watch events and lease keep-alives arrive on streams: not requests.
 */
export type EtcdOp = 'get' | 'put' | 'delete' | 'txn' | 'compact' | 'lease' | 'other';

const OPS: Record<string, EtcdOp> = { range: 'get', put: 'put', deleteRange: 'delete', txn: 'txn', compact: 'compact' };

function opOf(service: string, method: string): EtcdOp {
  return OPS[method] ?? (service === 'Lease' ? 'lease' : 'other');
}

type Exec = (service: string, method: string, payload: unknown, options?: unknown) => Promise<unknown>;

/**
 * Times every unary etcd request of this client, at the one place they all pass: the
 * connection pool's `exec`, which every KV, Lease and Maintenance call of the client and of its
 * namespaces goes through (the builders' get/put/delete/if, leases, compaction). The pool is
 * internal to etcd3 (1.1.x); if a later release moves it, nothing is timed and nothing breaks.
 * Returns whether the timing is in place.
 */
export function timeEtcdRequests(etcd: Etcd3, observe: (op: EtcdOp, seconds: number) => void): boolean {
  const pool = (etcd as unknown as { pool?: { exec?: Exec } }).pool;
  if (!pool || typeof pool.exec !== 'function') return false;
  const exec = pool.exec.bind(pool);
  pool.exec = async (service, method, payload, options) => {
    const start = performance.now();
    try {
      return await exec(service, method, payload, options);
    } finally {
      observe(opOf(service, method), (performance.now() - start) / 1000);
    }
  };
  return true;
}
