/**
 * bench/soak: does the fleet run for weeks? Starts a LocalFleet with enough agents for `--procs`
 * redis-server procs (procs/3 instances of 1 master + 2 replicas), leaves it running for
 * `--minutes`, and every `--every` seconds prints etcd's database size and in-use size, etcd's
 * write rate (revisions per second), and the scheduler's CPU % and RSS. At the end: a summary,
 * with how much the in-use size grew per minute after the first compaction had a chance to run.
 *
 *   npm run bench:soak -- --procs 300 --minutes 10
 *   npm run build && node dist/bench/soak.js --procs 30 --minutes 2
 *
 * The scheduler compacts etcd every `--compact-every` s keeping `--compact-retention` s of
 * history (defaults 30 and 60 here, shorter than the production 60 and 300, so that a run of a
 * few minutes shows where the in-use size levels off). Everything it starts is stopped at the
 * end, on error, and on Ctrl-C; every wait is bounded.
 *
 * With `--scrape-every S`, GET /metrics is scraped every S seconds in every other sample period
 * (the first without): the summary sets the scheduler's CPU with scraping against without, and
 * gives each scrape's time and size (issue 10: under 5 % of a core at 300 procs, every 5 s).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../test/harness/local-fleet.js';
import { InstanceStatus } from '../src/domain/model.js';
import { describeMachine, machineLines, OtherLoad } from './machine.js';
import { fail as failWith, parseFlags, runMain, type Program } from './program.js';
import { StartedHere } from './started-here.js';
import { BURST, mean, MetricsScraper, scrapeSummary } from './scrape.js';

const PROGRAM = 'soak';
const REPRODUCE = 'npm run bench:soak --';
const PROCS_PER_AGENT = 50;
const CAPACITY_MB = 16;
const CREATE_BATCH = 10;
const SERVERS = ['redis-server', 'etcd'] as const;

const USAGE = `usage: node dist/bench/soak.js [--procs N] [--minutes M] [--every S] [--compact-every S] [--compact-retention S] [--scrape-every S]
  --procs N              redis-server procs, a multiple of 3 (default 300): N/3 instances of 1 master + 2 replicas
  --minutes M            how long to run once every instance is RUNNING (default 10, at most 1440)
  --every S              seconds between samples (default 30)
  --compact-every S      the scheduler's --compact-every (default 30)
  --compact-retention S  the scheduler's --compact-retention (default 60)
  --scrape-every S       scrape /metrics every S s in every other sample period (default 0: never)`;

interface Options {
  procs: number;
  minutes: number;
  every: number;
  compactEvery: number;
  compactRetention: number;
  scrapeEvery: number;
}

const SOAK: Program = { name: PROGRAM, usage: USAGE };

/** Every soak usage error ends with the usage. */
function fail(message: string): never {
  failWith(SOAK, `${message}\n${USAGE}`);
}

function wholeNumber(value: string | boolean | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  if (!/^[0-9]{1,6}$/.test(text) || Number(text) < min || Number(text) > max) fail(`--${flag} must be a whole number from ${min} to ${max}, got '${text}'`);
  return Number(text);
}

function options(argv: string[]): Options {
  const values = parseFlags(SOAK, argv, {
    procs: { type: 'string' },
    minutes: { type: 'string' },
    every: { type: 'string' },
    'compact-every': { type: 'string' },
    'compact-retention': { type: 'string' },
    'scrape-every': { type: 'string' },
  });
  const procs = wholeNumber(values.procs, 'procs', 300, 3, 3000);
  if (procs % 3 !== 0) fail(`--procs must be a multiple of 3 (1 master + 2 replicas each), got ${procs}`);
  return {
    procs,
    minutes: wholeNumber(values.minutes, 'minutes', 10, 1, 1440),
    every: wholeNumber(values.every, 'every', 30, 1, 3600),
    compactEvery: wholeNumber(values['compact-every'], 'compact-every', 30, 1, 3600),
    compactRetention: wholeNumber(values['compact-retention'], 'compact-retention', 60, 1, 86_400),
    scrapeEvery: wholeNumber(values['scrape-every'], 'scrape-every', 0, 0, 3600),
  };
}

// ---------------------------------------------------------------------------------------------
// samples

interface EtcdStatus {
  dbSize: number;
  dbSizeInUse: number;
  revision: number;
}

function etcdStatus(fleet: LocalFleet): EtcdStatus {
  const [status] = JSON.parse(fleet.etcdctl('endpoint', 'status', '-w', 'json')) as { Status: { dbSize: number; dbSizeInUse: number; header: { revision: number } } }[];
  return { dbSize: status.Status.dbSize, dbSizeInUse: status.Status.dbSizeInUse, revision: status.Status.header.revision };
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

interface ProcUsage {
  cpuSeconds: number;
  rssBytes: number;
}

/** CPU time (user + system) and RSS of one process, from /proc. */
function procUsage(pid: number): ProcUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is the state (stat field 3): utime and stime are stat fields 14 and 15.
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  const rss = /^VmRSS:\s+([0-9]+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds, rssBytes: Number(rss?.[1] ?? 0) * 1024 };
}

interface Sample {
  t: number;
  dbSize: number;
  dbSizeInUse: number;
  writesPerSecond: number;
  cpuPercent: number;
  rssBytes: number;
  running: number;
  /** Whether /metrics was scraped during this sample's period (with --scrape-every). */
  scraping?: boolean;
}

const MiB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MiB).toFixed(2);

function header(): string {
  return `${'t (s)'.padStart(7)}${'db MiB'.padStart(10)}${'in-use MiB'.padStart(12)}${'writes/s'.padStart(10)}${'sched CPU %'.padStart(13)}${'sched RSS MiB'.padStart(15)}${'RUNNING'.padStart(9)}${'scraped'.padStart(9)}`;
}

function row(s: Sample): string {
  return `${s.t.toFixed(0).padStart(7)}${mib(s.dbSize).padStart(10)}${mib(s.dbSizeInUse).padStart(12)}${s.writesPerSecond.toFixed(1).padStart(10)}${s.cpuPercent.toFixed(1).padStart(13)}${mib(s.rssBytes).padStart(15)}${String(s.running).padStart(9)}${(s.scraping === undefined ? '-' : s.scraping ? 'yes' : 'no').padStart(9)}`;
}

async function runningInstances(fleet: LocalFleet): Promise<number> {
  const res = await fleet.api('GET', '/api/instances').catch(() => undefined);
  const list = Array.isArray(res?.json) ? (res.json as { status: InstanceStatus }[]) : [];
  return list.filter((i) => i.status === InstanceStatus.Running).length;
}

// ---------------------------------------------------------------------------------------------
// the run

async function createAll(fleet: LocalFleet, instances: number): Promise<void> {
  const names = Array.from({ length: instances }, (_, i) => `soak${i}`);
  for (let i = 0; i < names.length; i += CREATE_BATCH) {
    await Promise.all(names.slice(i, i + CREATE_BATCH).map(async (name) => {
      const res = await fleet.api('POST', '/api/instances', { name, capacityMb: CAPACITY_MB, replicas: 2 });
      if (res.status !== 202) throw new Error(`create ${name} answered ${res.status}: ${res.text}`);
    }));
  }
  // Bounded: a minute plus a second per instance.
  const deadline = Date.now() + 60_000 + instances * 1000;
  while ((await runningInstances(fleet)) < instances) {
    if (Date.now() > deadline) throw new Error(`only ${await runningInstances(fleet)} of ${instances} instances RUNNING in time`);
    await sleep(500);
  }
}

function summary(samples: Sample[], opts: Options): string[] {
  const steady = samples.filter((s) => s.t >= opts.compactRetention + opts.compactEvery);
  const base = steady.length >= 2 ? steady : samples;
  const first = base[0];
  const last = base[base.length - 1];
  const minutes = Math.max((last.t - first.t) / 60, 1 / 60);
  return [
    'summary:',
    `  in-use MiB         first ${mib(samples[0].dbSizeInUse)}, last ${mib(samples[samples.length - 1].dbSizeInUse)}, max ${mib(Math.max(...samples.map((s) => s.dbSizeInUse)))}`,
    `  in-use growth      ${((last.dbSizeInUse - first.dbSizeInUse) / MiB / minutes).toFixed(3)} MiB/min from t=${first.t.toFixed(0)} s to t=${last.t.toFixed(0)} s${steady.length >= 2 ? ' (after the first compaction could run)' : ' (run too short to pass the compaction retention: whole run)'}`,
    `  db size MiB        first ${mib(samples[0].dbSize)}, last ${mib(samples[samples.length - 1].dbSize)} (the file only shrinks on defrag)`,
    `  etcd writes/s      mean ${mean(samples.map((s) => s.writesPerSecond)).toFixed(1)}, max ${Math.max(...samples.map((s) => s.writesPerSecond)).toFixed(1)}`,
    `  scheduler CPU %    mean ${mean(samples.map((s) => s.cpuPercent)).toFixed(1)}, max ${Math.max(...samples.map((s) => s.cpuPercent)).toFixed(1)}`,
    `  scheduler RSS MiB  first ${mib(samples[0].rssBytes)}, last ${mib(samples[samples.length - 1].rssBytes)}, max ${mib(Math.max(...samples.map((s) => s.rssBytes)))}`,
    `  RUNNING            min ${Math.min(...samples.map((s) => s.running))} of ${opts.procs / 3}`,
  ];
}

/**
 * Every `opts.every` seconds until `opts.minutes` are up: etcd's sizes and write rate, the
 * scheduler's CPU and RSS, and the RUNNING count, printed as a table row each.
 */
async function sampleFor(fleet: LocalFleet, pid: number, opts: Options, otherLoad: OtherLoad, scraper?: MetricsScraper): Promise<Sample[]> {
  const samples: Sample[] = [];
  const t0 = Date.now();
  let prevEtcd = etcdStatus(fleet);
  let prevUsage = procUsage(pid);
  let prevAt = Date.now();
  console.log(header());
  const end = t0 + opts.minutes * 60_000;
  // Bounded by the sample count, whatever the clock does.
  const maxSamples = Math.ceil((opts.minutes * 60) / opts.every) + 1;
  for (let i = 0; i < maxSamples && Date.now() < end; i++) {
    if (scraper) scraper.scraping = i % 2 === 1;
    await sleep(Math.min(opts.every * 1000, Math.max(0, end - Date.now())));
    const now = Date.now();
    const etcd = etcdStatus(fleet);
    const usage = procUsage(pid);
    const dt = (now - prevAt) / 1000;
    const sample: Sample = {
      t: (now - t0) / 1000,
      dbSize: etcd.dbSize,
      dbSizeInUse: etcd.dbSizeInUse,
      writesPerSecond: (etcd.revision - prevEtcd.revision) / dt,
      cpuPercent: ((usage.cpuSeconds - prevUsage.cpuSeconds) / dt) * 100,
      rssBytes: usage.rssBytes,
      running: await runningInstances(fleet),
      scraping: scraper?.scraping,
    };
    samples.push(sample);
    console.log(row(sample));
    otherLoad.sample();
    prevEtcd = etcd;
    prevUsage = usage;
    prevAt = now;
  }
  return samples;
}

async function main(): Promise<number> {
  const opts = options(process.argv.slice(2));
  const started = new StartedHere(Boolean(process.env.REDFLEET_KEEP_TEST_DIRS));
  started.cleanUpOnExit(PROGRAM);
  const otherLoad = new OtherLoad(SERVERS);
  const loadBefore = loadavg()[0];
  otherLoad.sample();
  const agents = Math.max(3, Math.ceil(opts.procs / PROCS_PER_AGENT));
  console.log(`${PROGRAM}: ${opts.procs} procs (${opts.procs / 3} instances of 1+2, ${CAPACITY_MB} MB) on ${agents} agents for ${opts.minutes} min, a sample every ${opts.every} s`);
  console.log(`reproduce: ${REPRODUCE} --procs ${opts.procs} --minutes ${opts.minutes} --every ${opts.every} --compact-every ${opts.compactEvery} --compact-retention ${opts.compactRetention}${opts.scrapeEvery ? ` --scrape-every ${opts.scrapeEvery}` : ''}`);
  const fleet = await LocalFleet.start({
    agents,
    // Each proc takes 0.1 cpu of its agent's offer: give room for every proc the agent may hold.
    agent: { ports: PROCS_PER_AGENT + 10, mem: (PROCS_PER_AGENT + 10) * CAPACITY_MB, cpus: Math.ceil((PROCS_PER_AGENT + 10) / 10) },
    schedulerArgs: ['--compact-every', String(opts.compactEvery), '--compact-retention', String(opts.compactRetention)],
  });
  try {
    const t0create = Date.now();
    await createAll(fleet, opts.procs / 3);
    console.log(`all ${opts.procs / 3} instances RUNNING after ${((Date.now() - t0create) / 1000).toFixed(1)} s`);
    const pid = fleet.scheduler?.pid;
    if (!pid) throw new Error('the scheduler is not running');
    const scraper = opts.scrapeEvery > 0 ? new MetricsScraper(`${fleet.apiUrl}/metrics`, opts.scrapeEvery) : undefined;
    const samples = await sampleFor(fleet, pid, opts, otherLoad, scraper).finally(() => scraper?.stop());
    const compactions = fleet.log('scheduler').split('\n').filter((l) => l.includes('etcd history compacted')).length;
    if (samples.length > 0) for (const line of summary(samples, opts)) console.log(line);
    if (scraper && samples.length > 0) {
      const baseline = mean(samples.filter((s) => !s.scraping).map((s) => s.cpuPercent));
      const burstMs = await scraper.burst(BURST, () => procUsage(pid).cpuSeconds, baseline);
      for (const line of scrapeSummary(samples, scraper, opts.scrapeEvery, burstMs)) console.log(line);
    }
    console.log(`  compactions        ${compactions} (scheduler log)`);
    for (const line of machineLines(describeMachine(SERVERS))) console.log(line);
    console.log(otherLoad.line(loadBefore));
    return 0;
  } finally {
    await fleet.stop();
  }
}

runMain(PROGRAM, main);
