/**
 * bench/failover/series: one system's runs in order (a warm-up, then each fault in turn), with
 * their progress on stderr and a bound on failures in a row.
 */
import { OtherLoad } from '../machine.js';
import { FAULT_LABEL, FAULTS, MAX_CONSECUTIVE_FAILURES, SERVERS, type Fault, type Outcome, type Run, type System } from './parameters.js';

/** Samples other redis-server, redis-sentinel and etcd processes between runs (untimed). */
export const otherLoad = new OtherLoad(SERVERS);

function progress(run: Run): void {
  process.stderr.write(`${run.system} ${FAULT_LABEL[run.fault]} ${run.label}: ${run.ms.toFixed(0)} ms${run.notes.length ? ` (${run.notes.join('; ')})` : ''}\n`);
}

/**
 * Runs warm-up + runs x FAULTS (alternating kill -9 and SIGSTOP) through `one`, bounded by
 * MAX_CONSECUTIVE_FAILURES.
 */
export async function series(system: System, runs: number, one: (i: number, fault: Fault) => Promise<Run>, out: Outcome): Promise<void> {
  let consecutive = 0;
  for (let i = 0; i <= runs; i++) {
    for (const fault of i === 0 ? (['SIGKILL'] as const) : FAULTS) {
      try {
        const run = await one(i, fault);
        if (i > 0) out.runs.push(run);
        else run.label = `${run.label} (warm-up, untimed)`;
        progress(run);
        consecutive = 0;
      } catch (err) {
        consecutive++;
        const msg = `${system} ${FAULT_LABEL[fault]} run ${i}${i === 0 ? ' (warm-up)' : ''}: ${(err as Error).message}`;
        if (i > 0) out.failures.push(msg);
        else out.notes.push(msg);
        process.stderr.write(`FAILED ${msg}\n`);
      }
      otherLoad.sample();
      if (consecutive >= MAX_CONSECUTIVE_FAILURES) throw new Error(`${consecutive} ${system} runs failed in a row; giving up`);
    }
  }
}
