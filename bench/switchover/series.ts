/** bench/switchover/series: one system's runs in order, with progress on stderr and a bound on failures in a row. */
import { OtherLoad } from '../machine.js';
import { MAX_CONSECUTIVE_FAILURES, SERVERS, type Outcome, type Run, type System } from './parameters.js';

/** Samples other redis-server, redis-sentinel and etcd processes between runs (untimed). */
export const otherLoad = new OtherLoad(SERVERS);

/** Runs 1..runs through `one`; a failed run is reported and left out of the figures. */
export async function series(system: System, runs: number, one: (i: number) => Promise<Run>, out: Outcome): Promise<void> {
  let consecutive = 0;
  for (let i = 1; i <= runs; i++) {
    try {
      const run = await one(i);
      out.runs.push(run);
      const paused = run.pausedMs === undefined ? '' : `, master paused ${run.pausedMs} ms`;
      process.stderr.write(`${system} ${run.label}: gap ${run.gapMs} ms, lost ${run.lost} of ${run.acked}${paused}\n`);
      consecutive = 0;
    } catch (err) {
      consecutive++;
      const msg = `${system} run ${i}: ${(err as Error).message}`;
      out.failures.push(msg);
      process.stderr.write(`FAILED ${msg}\n`);
    }
    otherLoad.sample();
    if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} ${system} runs failed in a row; giving up`);
  }
}
