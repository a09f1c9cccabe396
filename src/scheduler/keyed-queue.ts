import PQueue from 'p-queue';

/**
 * Jobs run one at a time per key (an instance's name), and at most `concurrency` keys at once.
 * A failover of one instance, which may wait seconds for a replica to take the master role, holds
 * up only that instance's later jobs, never another instance's failover. Urgent jobs (failovers)
 * have a pool of their own, `urgentConcurrency` wide: they never wait for a routine job's slot,
 * and an agent lost with dozens of masters has more of them failed over together (issue 11: 70
 * masters on 10 lost agents took 4.6 s to fail over 16 at a time, each mostly waiting for its
 * replica to take the role; 128 at once, polling ROLE every 5 ms, overloaded the fleet instead).
 */
export class KeyedQueue {
  private readonly pool: PQueue;
  private readonly urgentPool: PQueue;
  /** The last job of each key with one waiting or running: the next one for that key goes after it. */
  private readonly tails = new Map<string, Promise<void>>();
  /**
   * Set once the queue is cleared: the jobs still waiting for a slot then run as nothing when their
   * slot comes. Not p-queue's clear(), which drops them without settling their promises (a key's
   * tail, onIdle and a lost term's stop would wait forever), nor an AbortSignal given to each job:
   * every waiting job then adds a listener to that one signal, and Node looks through all of them
   * on each add and remove, so 33,000 jobs queued at once (a leader's first look at every instance
   * of a 100,000-proc tree) held its loop 5-15 s at a time and lost it its term (issue 11).
   */
  private cleared = false;

  constructor(concurrency: number, urgentConcurrency = concurrency) {
    this.pool = new PQueue({ concurrency });
    this.urgentPool = new PQueue({ concurrency: urgentConcurrency });
  }

  /**
   * Runs `job` after every job already added for `key`; its failure is the job's own business.
   * An `urgent` job (a failover) runs in the urgent pool, still after its own key's earlier jobs.
   */
  add(key: string, job: () => Promise<void>, urgent = false): void {
    const run = async (): Promise<void> => {
      if (this.cleared) return;
      await (urgent ? this.urgentPool : this.pool).add(async () => {
        if (!this.cleared) await job();
      });
    };
    const next = (this.tails.get(key) ?? Promise.resolve()).then(run).catch(() => undefined);
    this.tails.set(key, next);
    void next.then(() => {
      if (this.tails.get(key) === next) this.tails.delete(key);
    });
  }

  /** Drops every job not yet started, for good (the queue's owner is stopping): see `cleared`. */
  clear(): void {
    this.cleared = true;
  }

  /** Resolves once every job added so far has ended. */
  async onIdle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
