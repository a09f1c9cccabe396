import PQueue from 'p-queue';
import type { Logger } from '../logger.js';
import { KeyedQueue } from './keyed-queue.js';

/** While a failover is held back or an instance waits for an agent, how often to look again. */
export const RECHECK_MS = 1000;
/** Instances the maintainer works on at once (each one's jobs still run one at a time). */
const MAINTAINER_CONCURRENCY = 16;
/** Failovers the maintainer runs at once, beside those (see KeyedQueue). */
const FAILOVER_CONCURRENCY = 32;

/**
 * The framework's queues: the creator and the destroyer are p-queues of concurrency 1; the
 * maintainer is serial per instance, with instances in parallel (see KeyedQueue). A job waiting
 * under a key is not added twice; a running one may be queued again.
 */
export class FrameworkJobs {
  private readonly creator = new PQueue({ concurrency: 1 });
  /** Serial per instance; instances in parallel (see KeyedQueue). */
  private readonly maintainer = new KeyedQueue(MAINTAINER_CONCURRENCY, FAILOVER_CONCURRENCY);
  private readonly destroyer = new PQueue({ concurrency: 1 });
  private readonly queued = new Set<string>();
  private readonly rechecks = new Map<string, NodeJS.Timeout>();
  private ended = false;

  /** `recheck`: looks at an instance again (the framework routes it to its maintainer or destroyer). */
  constructor(private readonly log: Logger, private readonly recheck: (name: string) => void) {}

  /** The framework stopped: its term is over. */
  get stopped(): boolean {
    return this.ended;
  }

  /** Runs a creator job; its failure is the caller's. */
  create(job: () => Promise<void>): Promise<void> {
    return this.creator.add(job);
  }

  /**
   * Adds a maintainer job to the instance's own queue, unless the same one is already waiting.
   * `urgent` (failovers): in a pool of their own, never behind other instances' routine jobs.
   */
  maintain(instance: string, key: string, job: () => Promise<void>, urgent = false): void {
    const wrapped = this.once(key, job);
    if (wrapped) this.maintainer.add(instance, wrapped, urgent);
  }

  /** Adds a destroyer job unless the same one is already waiting. */
  destroy(key: string, job: () => Promise<void>): void {
    const wrapped = this.once(key, job);
    if (wrapped) void this.destroyer.add(wrapped);
  }

  /** Looks at the instance again in `ms` (once, however often asked meanwhile). */
  recheckLater(name: string, ms = RECHECK_MS): void {
    if (this.rechecks.has(name) || this.ended) return;
    this.rechecks.set(name, setTimeout(() => {
      this.rechecks.delete(name);
      this.recheck(name);
    }, ms));
  }

  /** Drops every job not yet started and waits for the running ones. */
  async stop(): Promise<void> {
    this.ended = true;
    for (const t of this.rechecks.values()) clearTimeout(t);
    this.creator.clear();
    this.maintainer.clear();
    this.destroyer.clear();
    await Promise.all([this.creator.onIdle(), this.maintainer.onIdle(), this.destroyer.onIdle()]);
  }

  /** The job, marked waiting under `key` until it starts; undefined when it is already waiting. */
  private once(key: string, job: () => Promise<void>): (() => Promise<void>) | undefined {
    // A stopped framework's term is over: a late request (an in-flight PING's verdict) must not act.
    if (this.ended || this.queued.has(key)) return undefined;
    this.queued.add(key);
    return async () => {
      this.queued.delete(key);
      try {
        await job();
      } catch (err) {
        this.log.error('framework job failed', { job: key, error: (err as Error).message });
      }
    };
  }
}
