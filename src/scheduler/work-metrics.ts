import { Counter, Histogram, Registry } from 'prom-client';
import type { EtcdOp } from '../store/etcd.js';
import type { SchedulerMeter } from './meter.js';

/**
 * From a POST to its procs LAUNCHed: about 15 ms on an idle fleet (the API's write, then one
 * round of offers: docs/BENCHMARKS.md, create-latency), up to a second or two when a refuse
 * filter has to expire or the fleet is busy; an instance that waits for room waits minutes.
 */
const PLACEMENT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/**
 * From a POST to RUNNING: placement, redis-server starting, every replica's first sync: p50
 * 122 ms on an idle fleet (create-latency), seconds on a busy one; a restore from a backup or a
 * wait for room takes longer.
 */
const RUNNING_BUCKETS = [0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120, 300];
/**
 * One etcd round trip: under a millisecond for a read of a local etcd, a few ms for a write
 * (etcd's fsync), tens to hundreds of ms on a slow disk or a leader election: the buckets of
 * etcd's own disk and gRPC histograms, from 0.5 ms to 2.5 s.
 */
const ETCD_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The scheduler's work as it happens (offers, placements, first RUNNINGs, etcd requests): the
 * prom-client side of SchedulerMeter. Built before the scheduler opens (etcd is timed from its
 * first request); SchedulerMetrics adds the fleet gauges to the same registry afterwards.
 */
export class WorkMetrics implements SchedulerMeter {
  readonly registry = new Registry();
  private readonly offers: Counter<'outcome'>;
  private readonly placements: Counter;
  private readonly placementDuration: Histogram;
  private readonly createToRunning: Histogram;
  private readonly etcdDuration: Histogram<'op'>;

  constructor() {
    const registers = [this.registry];
    this.offers = new Counter({ name: 'redfleet_offers_total', help: 'Offers the Redis framework answered: accepted (procs launched on it) or declined', labelNames: ['outcome'], registers });
    for (const outcome of ['accepted', 'declined']) this.offers.inc({ outcome }, 0);
    this.placements = new Counter({ name: 'redfleet_placements_total', help: 'Procs placed: LAUNCHed onto an agent (creations, replacements, scale-ups, moves)', registers });
    this.placementDuration = new Histogram({ name: 'redfleet_placement_duration_seconds', help: 'From an instance\'s POST to each of its first procs LAUNCHed (creations only)', buckets: PLACEMENT_BUCKETS, registers });
    this.createToRunning = new Histogram({ name: 'redfleet_create_to_running_seconds', help: 'From an instance\'s POST to its first RUNNING (once per instance)', buckets: RUNNING_BUCKETS, registers });
    this.etcdDuration = new Histogram({ name: 'redfleet_etcd_request_duration_seconds', help: 'etcd requests (unary gRPC calls) by op: get, put, delete, txn, compact, lease, other', labelNames: ['op'], buckets: ETCD_BUCKETS, registers });
  }

  offer(outcome: 'accepted' | 'declined'): void {
    this.offers.inc({ outcome });
  }

  placed(secondsSinceCreate: number | undefined): void {
    this.placements.inc();
    if (secondsSinceCreate !== undefined) this.placementDuration.observe(secondsSinceCreate);
  }

  createdToRunning(seconds: number): void {
    this.createToRunning.observe(seconds);
  }

  etcdRequest(op: EtcdOp, seconds: number): void {
    this.etcdDuration.observe({ op }, seconds);
  }
}
