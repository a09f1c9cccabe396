/**
 * bench/resize: how long a resize takes on a real fleet (issue 9 part 1), from the PATCH to the
 * operation's `done`, for a 1 master + 2 replicas instance:
 * - grow in place 32 -> 64 MB (every agent has the room: CONFIG SET through the agents, no restart);
 * - shrink in place 64 -> 32 MB;
 * - grow 32 -> 64 MB where the master's agent lacks the room: a switchover to a replica, a new
 *   replica of 64 MB placed and synced on a spare agent, the old master retired, then maxmemory.
 * An AckedWriter (SET + WAIT 1 100 through the Sentinel endpoint) runs through every resize; the
 * report gives the acknowledged writes lost (must be 0) and the longest write gap.
 *
 *   npm run build && node dist/bench/resize.js [--runs N]
 *
 * Every wait is bounded (120 s); a run that does not end is counted as failed (exit code 1).
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { AckedWriter } from '../test/harness/acked-writer.js';
import { sortedRuns, summarize, summaryHeader, summaryRow, type SummaryLayout } from './figures.js';
import { describeMachine, machineLines, OtherLoad } from './machine.js';
import { parseFlags, runMain, runsFlag, type Program } from './program.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const REPRODUCE = 'npm run build && node dist/bench/resize.js --runs 10';
const PROGRAM: Program = {
  name: 'resize',
  usage: `usage: node dist/bench/resize.js [--runs N]   (${REPRODUCE})
  --runs N   instances resized per kind (default 10, 1-100); each run creates and deletes its instance`,
};
const SERVERS = ['redis-server', 'etcd'];
const TIMEOUT_MS = 120_000;
const TABLE: SummaryLayout = { labelWidth: 34, cellWidth: 9, digits: 0 };
/** The small agent holds one 32 MB proc with 16 MB to spare: too little to grow it to 64. */
const SMALL_AGENT_MB = 48;

interface Kind {
  label: string;
  ms: number[];
  lost: number;
  acked: number;
  maxGapMs: number;
  failures: string[];
}

const otherLoad = new OtherLoad(SERVERS);

async function main(): Promise<number> {
  const values = parseFlags(PROGRAM, process.argv.slice(2), { runs: { type: 'string' } });
  const runs = runsFlag(PROGRAM, values.runs, 10, 100);
  const startedAt = new Date();
  const host = describeMachine(SERVERS);
  const loadBefore = loadavg()[0];
  const kinds = { grow: kind('grow in place 32 -> 64 MB'), shrink: kind('shrink in place 64 -> 32 MB'), move: kind('grow 32 -> 64 MB moving the master') };
  // agent1, agent2 and agent4 have room; agent3 is the small one.
  const fleet = await LocalFleet.start({ agents: 2 });
  try {
    await fleet.startAgent('agent3', { mem: SMALL_AGENT_MB });
    await fleet.startAgent('agent4');
    await fleet.waitFor(async () => (await fleet.api('GET', '/healthz')).json.agents === 4, 30_000, 'four agents');
    for (let i = 0; i < runs; i++) {
      otherLoad.sample();
      await inPlace(fleet, `ip${i}`, kinds.grow, kinds.shrink);
      await moving(fleet, `mv${i}`, kinds.move);
      process.stderr.write(`resize: run ${i + 1}/${runs} done\n`);
    }
  } finally {
    await fleet.stop();
  }
  const all = Object.values(kinds);
  console.log(report(all, runs, startedAt, loadBefore, host).join('\n'));
  return all.some((k) => k.failures.length > 0 || k.lost > 0) ? 1 : 0;
}

function kind(label: string): Kind {
  return { label, ms: [], lost: 0, acked: 0, maxGapMs: 0, failures: [] };
}

/** One 1+2 instance spread over the large agents: grown, then shrunk, in place. */
async function inPlace(fleet: LocalFleet, name: string, grow: Kind, shrink: Kind): Promise<void> {
  const password = await create(fleet, name, 'spread');
  if (!password) return void grow.failures.push(`${name}: not RUNNING within ${TIMEOUT_MS / 1000} s`);
  await timed(fleet, name, password, 64, grow);
  await timed(fleet, name, password, 32, shrink);
  await remove(fleet, name);
}

/** One 1+2 instance binpacked so that its master sits on the small agent: the grow must move it. */
async function moving(fleet: LocalFleet, name: string, move: Kind): Promise<void> {
  const password = await create(fleet, name, 'binpack');
  if (!password) return void move.failures.push(`${name}: not RUNNING within ${TIMEOUT_MS / 1000} s`);
  const inst = (await fleet.api('GET', `/api/instances/${name}`)).json;
  const master = inst.procs.find((p: Json) => p.id === inst.master.id);
  if (master.agent !== 'agent3') move.failures.push(`${name}: master on ${master.agent}, not on the small agent3`);
  else await timed(fleet, name, password, 64, move);
  await remove(fleet, name);
}

async function create(fleet: LocalFleet, name: string, placement: string): Promise<string | undefined> {
  const res = await fleet.api('POST', '/api/instances', { name, capacityMb: 32, replicas: 2, placement });
  if (res.status !== 202) throw new Error(`create ${name}: ${res.status} ${res.text}`);
  const ok = await fleet.waitForStatus(name, 'RUNNING', TIMEOUT_MS).then(() => true, () => false);
  return ok ? String(res.json.password) : undefined;
}

async function remove(fleet: LocalFleet, name: string): Promise<void> {
  await fleet.api('DELETE', `/api/instances/${name}`);
  await fleet.waitForStatus(name, 'DELETED', TIMEOUT_MS).catch(() => undefined);
}

/** PATCH capacityMb with a writer running; the time to `done`, writes lost and the write gap. */
async function timed(fleet: LocalFleet, name: string, password: string, capacityMb: number, into: Kind): Promise<void> {
  const writer = new AckedWriter(fleet.sentinelPort, name, password);
  writer.start(`${capacityMb}:`);
  try {
    await writer.waitForAcks(20, TIMEOUT_MS);
    const t0 = performance.now();
    const res = await fleet.api('PATCH', `/api/instances/${name}`, { capacityMb });
    if (res.status !== 202) throw new Error(`${res.status} ${res.text}`);
    const end = await fleet.waitFor(async () => {
      const op = (await fleet.api('GET', `/api/instances/${name}`)).json.operation;
      return op?.id === res.json.operation.id && op.state !== 'running' ? op : undefined;
    }, TIMEOUT_MS, `the resize of ${name}`);
    const ms = performance.now() - t0;
    if (end.state !== 'done') throw new Error(`failed: ${end.error}`);
    into.ms.push(ms);
    await writer.waitForAcks(20, TIMEOUT_MS);
    await writer.stop();
    const inst = (await fleet.api('GET', `/api/instances/${name}`)).json;
    into.lost += (await writer.missingOn(inst.master, password)).length;
    into.acked += writer.acked.size;
    into.maxGapMs = Math.max(into.maxGapMs, writer.maxGapMs);
  } catch (err) {
    into.failures.push(`${name} -> ${capacityMb} MB: ${(err as Error).message}`);
  } finally {
    await writer.stop();
  }
}

function report(kinds: Kind[], runs: number, startedAt: Date, loadBefore: number, host: Record<string, string>): string[] {
  const out = [
    '',
    'resize: PATCH /api/instances/<name> {"capacityMb"} -> operation done, 1 master + 2 replicas, an AckedWriter running',
    `date: ${startedAt.toISOString()}   runs per kind: ${runs}   fleet: agent1, agent2, agent4 1024 MB; agent3 ${SMALL_AGENT_MB} MB`,
    '',
    summaryHeader(TABLE),
    ...kinds.map((k) => summaryRow(k.label, summarize(k.ms), TABLE)),
    '',
    ...kinds.map((k) => `${k.label}: acknowledged writes ${k.acked}, lost ${k.lost}, longest write gap ${k.maxGapMs} ms; runs (ms): ${sortedRuns(k.ms)}`),
  ];
  const failures = kinds.flatMap((k) => k.failures);
  if (failures.length > 0) out.push('', `FAILED runs (${failures.length}):`, ...failures.map((f) => `  ${f}`));
  out.push('', otherLoad.line(loadBefore), '', ...machineLines(host), '', `reproduce: ${REPRODUCE}`);
  return out;
}

runMain('resize', main);
