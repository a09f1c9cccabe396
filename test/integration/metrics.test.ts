import { expect } from 'chai';
import { createRequire } from 'node:module';
import { LocalFleet } from '../harness/local-fleet.js';
import { freePort } from '../../src/net.js';

/** One metric family as parse-prometheus-text-format gives it (prom2json's shape). */
interface Family {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> }[];
}

// A maintained parser of the text format (ported from the Prometheus Python client's), not a regex.
const parseText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

/**
 * Lines that do not parse on their own: each sample line, alone, must come out of the parser as
 * one sample with a number. Line by line because the parser folds a histogram's label sets into
 * one (nodejs_gc_duration_seconds{kind} loses two of its three), so counting samples of the
 * whole text would not show a bad line.
 */
function unparsedLines(text: string): string[] {
  const bad: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    try {
      const one = parseText(`${line}\n`);
      const value = one[0]?.metrics[0]?.value;
      if (one.length !== 1 || one[0].metrics.length !== 1 || value === undefined || (Number.isNaN(Number(value)) && !/^nan$/i.test(value))) bad.push(line);
    } catch {
      bad.push(line);
    }
  }
  return bad;
}

function samples(families: Family[], name: string): Family['metrics'] {
  return families.find((f) => f.name === name)?.metrics ?? [];
}

/**
 * The samples of one series name (e.g. a histogram's `_count`), each line parsed alone: the
 * parser folds a histogram's label sets into one, so `{op="put"}` and `{op="txn"}` are read line by line.
 */
function seriesLines(text: string, name: string): Family['metrics'] {
  const lines = text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return lines.flatMap((l) => parseText(`${l}\n`)[0]?.metrics ?? []);
}

/** The scheduler's work: offers, placements, the creation histograms and etcd's request times. */
function expectWorkCounted(families: Family[], text: string): void {
  const offers = (outcome: string) => Number(samples(families, 'redfleet_offers_total').find((m) => m.labels?.outcome === outcome)?.value);
  expect(offers('accepted'), 'offers accepted').to.be.greaterThan(0);
  expect(offers('declined'), 'offers declined (a number, maybe 0)').to.be.at.least(0);
  expect(Number(samples(families, 'redfleet_placements_total')[0]?.value), 'placements').to.be.at.least(3);
  for (const name of ['redfleet_placement_duration_seconds', 'redfleet_create_to_running_seconds']) {
    expect(families.find((f) => f.name === name)?.type, name).to.equal('HISTOGRAM');
    expect(Number(samples(families, name)[0]?.count), `${name} samples`).to.be.at.least(1);
  }
  const etcdCounts = new Map(seriesLines(text, 'redfleet_etcd_request_duration_seconds_count').map((m) => [m.labels?.op, Number(m.value)]));
  for (const op of ['get', 'put', 'txn', 'lease']) expect(etcdCounts.get(op) ?? 0, `etcd ${op} requests timed`).to.be.greaterThan(0);
  expect(samples(families, 'redfleet_agents').map((m) => m.labels?.state).sort()).to.deep.equal(['connected', 'disconnected', 'draining']);
}

describe('/metrics on a real fleet', function () {
  this.timeout(180_000);
  let fleet: LocalFleet;

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3 });
  });

  after(async () => {
    await fleet?.stop();
  });

  let lastText = '';
  async function scrape(): Promise<Family[]> {
    const res = await fleet.api('GET', '/metrics');
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const families = parseText(res.text);
    expect(unparsedLines(res.text).join('; '), 'sample lines that do not parse').to.equal('');
    lastText = res.text;
    return families;
  }

  it('shows the fleet and the procs, and a failover moves the counter, the histogram and the role label', async () => {
    const res = await fleet.api('POST', '/api/instances', { name: 'watched', capacityMb: 32, replicas: 2 });
    expect(res.status).to.equal(202);
    const before = await fleet.waitForStatus('watched', 'RUNNING');
    
    const first = await fleet.waitFor(async () => {
      const f = await scrape();
      const info = samples(f, 'redis_instance_info').filter((m) => m.labels?.instance === 'watched');
      return info.length === 3 && info.every((m) => m.labels?.redis_version) ? f : undefined;
    }, 20_000, 'both procs in redis_instance_info');
    expect(samples(first, 'redfleet_scheduler_leader')[0].value).to.equal('1');
    expect(samples(first, 'redfleet_sentinel_clients')).to.have.length(1);
    expect(samples(first, 'redfleet_agents').find((m) => m.labels?.state === 'connected')?.value).to.equal('3');
    expect(Number(samples(first, 'redfleet_instances').find((m) => m.labels?.status === 'RUNNING')?.value)).to.be.at.least(1);
    expect(samples(first, 'redfleet_agent_resources').filter((m) => m.labels?.resource === 'mem_bytes' && m.labels?.kind === 'total')).to.have.length(3);
    const up = samples(first, 'redis_up').filter((m) => m.labels?.instance === 'watched');
    expect(up.map((m) => m.value)).to.deep.equal(['1', '1', '1']);
    expect(samples(first, 'redis_memory_used_bytes').find((m) => m.labels?.proc === before.master.id)?.labels?.role).to.equal('master');
    const replicas = samples(first, 'redis_instance_info').filter((m) => m.labels?.instance === 'watched' && m.labels?.proc !== before.master.id);
    expect(replicas.map((m) => m.labels?.role)).to.deep.equal(['slave', 'slave']);
    expect(first.find((f) => f.name === 'redis_commands_processed_total')?.type).to.equal('COUNTER');
    expect(samples(first, 'redfleet_failovers_total').filter((m) => m.labels?.instance === 'watched')).to.have.length(0);
    expect(samples(first, 'process_cpu_seconds_total'), 'Node default metrics').to.have.length(1);
    expect(samples(first, 'redfleet_api_requests_total').some((m) => m.labels?.route === '/api/instances/:name' && m.labels?.code === '200')).to.equal(true);
    expectWorkCounted(first, lastText);

    process.kill(before.master.pid, 'SIGKILL');
    const promoted = await fleet.waitFor(async () => {
      const i = (await fleet.api('GET', '/api/instances/watched')).json;
      return i.master && i.master.id !== before.master.id && i.status === 'RUNNING' ? i.master.id as string : undefined;
    }, 60_000, 'a replica promoted');
    let seen = '';
    const after = await fleet.waitFor(async () => {
      const f = await scrape();
      const moved = samples(f, 'redfleet_failovers_total').filter((m) => m.labels?.instance === 'watched');
      const role = samples(f, 'redis_instance_info').find((m) => m.labels?.proc === promoted)?.labels?.role;
      seen = `failovers ${JSON.stringify(moved)}, role of ${promoted} ${role}`;
      return moved.some((m) => m.labels?.cause === 'failure' && m.value === '1') && role === 'master' ? f : undefined;
    }, 30_000, 'the failover in /metrics').catch((err: Error) => { throw new Error(`${err.message}; last seen: ${seen}`); });
    const histogram = samples(after, 'redfleet_failover_duration_seconds')[0];
    expect(Number(histogram.count), 'failover duration samples').to.be.at.least(1);
    expect(after.find((f) => f.name === 'redfleet_failover_duration_seconds')?.type).to.equal('HISTOGRAM');
  });

  it('takes an admin token when tokens are configured, refuses an instance access key, and is open on --metrics', async () => {
    const metricsPort = await freePort();
    const secured = await LocalFleet.start({ agents: 1, adminToken: 'metrics-admin-token-01', schedulerArgs: ['--api-token', 'metrics-admin-token-01', '--metrics', `127.0.0.1:${metricsPort}`] });
    try {
      expect((await secured.api('GET', '/metrics')).status).to.equal(401);
      const ok = await secured.api('GET', '/metrics', undefined, { Authorization: 'Bearer metrics-admin-token-01' });
      expect(ok.status).to.equal(200);
      const created = await secured.api('POST', '/api/instances', { name: 'keyed', capacityMb: 16, replicas: 0 }, { Authorization: 'Bearer metrics-admin-token-01' });
      expect(created.status).to.equal(202);
      const denied = await secured.api('GET', '/metrics', undefined, { Authorization: `Bearer ${created.json.accessKey}` });
      expect(denied.status).to.equal(403);
      expect(denied.json.error.code).to.equal('FORBIDDEN');
      const own = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(own.status).to.equal(200);
      expect(await own.text()).to.include('redfleet_scheduler_leader 1');
      expect((await fetch(`http://127.0.0.1:${metricsPort}/api/instances`)).status).to.equal(404);
    } finally {
      await secured.stop();
    }
  });
});
