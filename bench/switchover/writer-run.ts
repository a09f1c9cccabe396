/**
 * bench/switchover/writer-run: one measured switch on either side: a client writing SET + WAIT 1
 * 100 through the Sentinel protocol (test/harness/acked-writer.ts) before, during and after the
 * switch; then the acknowledged keys are looked up on the new master.
 */
import { AckedWriter } from '../../test/harness/acked-writer.js';
import { RUN_TIMEOUT_MS, WRITES_AROUND, type Run, type System } from './parameters.js';

export interface Switch {
  /** Makes the switch and resolves once it has ended; the new master's address. */
  run(): Promise<{ ip: string; port: number; pausedMs?: number }>;
}

/** Writes through `sentinelPort` around `sw`; the run's gap and losses. */
export async function measureSwitch(system: System, label: string, sentinelPort: number, name: string, password: string, sw: Switch): Promise<Run> {
  const writer = new AckedWriter(sentinelPort, name, password);
  writer.start(`${label.replace(/\s+/g, '-')}:`);
  try {
    await writer.waitForAcks(WRITES_AROUND, RUN_TIMEOUT_MS);
    const master = await sw.run();
    await writer.waitForAcks(WRITES_AROUND, RUN_TIMEOUT_MS);
    await writer.stop();
    const missing = await writer.missingOn(master, password);
    return { system, label, gapMs: writer.maxGapMs, lost: missing.length, acked: writer.acked.size, pausedMs: master.pausedMs };
  } finally {
    await writer.stop();
  }
}
