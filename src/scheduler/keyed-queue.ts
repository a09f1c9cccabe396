import { setMaxListeners } from 'node:events';
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
  private cleared = false;
  /**
   * Aborts the jobs still waiting for a slot when the queue is cleared. p-queue's own clear()
   * drops them without ever settling their promises, so a key's tail (and onIdle, and a lost
   * term's stop) would wait for them forever.
   */
  private readonly abort = new AbortController();

  constructor(concurrency: number, urgentConcurrency = concurrency) {
    this.pool = new PQueue({ concurrency });
    this.urgentPool = new PQueue({ concurrency: urgentConcurrency });
    // Every waiting job listens on this one signal; hundreds may wait at scale (Node warns past 10).
    setMaxListeners(0, this.abort.signal);
  }

  /**
   * Runs `job` after every job already added for `key`; its failure is the job's own business.
   * An `urgent` job (a failover) runs in the urgent pool, still after its own key's earlier jobs.
   */
  add(key: string, job: () => Promise<void>, urgent = false): void {
    const run = async (): Promise<void> => {
      if (this.cleared) return;
      await (urgent ? this.urgentPool : this.pool).add(job, { signal: this.abort.signal });
    };
    const next = (this.tails.get(key) ?? Promise.resolve()).then(run).catch(() => undefined);
    this.tails.set(key, next);
    void next.then(() => {
      if (this.tails.get(key) === next) this.tails.delete(key);
    });
  }

  /** Drops every job not yet started, for good (the queue's owner is stopping). */
  clear(): void {
    this.cleared = true;
    this.abort.abort();
    this.pool.clear();
    this.urgentPool.clear();
  }

  /** Resolves once every job added so far has ended. */
  async onIdle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
