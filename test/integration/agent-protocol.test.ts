import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { CLI, LocalFleet, killAndWait, pidAlive } from '../harness/local-fleet.js';
import { ProtocolAgent, postCall } from '../harness/protocol-agent.js';
import { encodeFrame } from '../../src/proto/recordio.js';
import { sealEvent } from '../../src/proto/sealed-event.js';
import { pb } from '../../src/proto/messages.js';
import { freePort } from '../../src/net.js';
import { eventKey, schedulerProof } from '../../src/store/secrets.js';
import { setTimeout as sleep } from 'node:timers/promises';

interface ProcRow { id: string; agent: string; ip: string; port: number; state: string; role: string; pid?: number }

/** The scheduler's resident memory in MB, from /proc. */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

describe('agent protocol: sessions, proofs and heartbeats (issue 7 items 5-8, 17-19, 21)', function () {
  this.timeout(120_000);
  let fleet: LocalFleet;
  let key: string;
  const extra: ChildProcess[] = [];
  const clients: ProtocolAgent[] = [];
  let fake: Server | undefined;

  const procs = async (name: string): Promise<ProcRow[]> => {
    const inst = (await fleet.api('GET', `/api/instances/${name}`)).json;
    return inst.procs ?? [];
  };
  const procState = (name: string, procId: string): string => fleet.etcdctl('get', '--print-value-only', `/MrRedis/Instances/${name}/Procs/${procId}/State`).trim();
  const masterOf = (name: string): string => fleet.etcdctl('get', '--print-value-only', `/MrRedis/Instances/${name}/Mname`).trim();

  before(async () => {
    fleet = await LocalFleet.start({ agents: 3, schedulerArgs: ['--agent-timeout', '6'] });
    key = readFileSync(fleet.fleetKeyPath, 'utf8').trim();
    expect((await fleet.api('POST', '/api/instances', { name: 'guarded', capacityMb: 16, replicas: 1 })).status).to.equal(202);
    await fleet.waitForStatus('guarded', 'RUNNING');
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const child of extra) await killAndWait(child, 'SIGKILL');
    await new Promise<void>((r) => (fake ? fake.close(() => r()) : r()));
    if (fleet?.agents.size) for (const child of fleet.agents.values()) child.kill('SIGCONT');
    await fleet?.stop();
  });

  it('acts only as the authenticated agent: a forged agent_id or another agent\'s proc gets 403 and no failover', async () => {
    const before = await procs('guarded');
    const master = before.find((p) => p.id === masterOf('guarded'))!;
    const rogue = new ProtocolAgent(fleet.apiUrl, 'rogue', key);
    clients.push(rogue);
    try {
      expect(await rogue.subscribe(await ProtocolAgent.sign(fleet.apiUrl, 'rogue', key, { hostname: '127.0.0.1' }))).to.equal(200);
      const failed = { task_id: { value: master.id }, state: pb.TaskState.TASK_FAILED, uuid: randomBytes(16) };
      const forged = await rogue.call({ type: pb.Call.Type.UPDATE, agent_id: { value: master.agent }, update: { status: { ...failed, agent_id: { value: master.agent } } } });
      expect(forged.status).to.equal(403);
      expect(JSON.parse(forged.text).error.code).to.equal('AGENT_MISMATCH');
      const notMine = await rogue.call({ type: pb.Call.Type.UPDATE, update: { status: failed } });
      expect(notMine.status).to.equal(403);
      expect(JSON.parse(notMine.text).error.code).to.equal('NOT_YOUR_PROC');
      await sleep(1000);
      expect(procState('guarded', master.id)).to.equal('RUNNING');
      expect(masterOf('guarded')).to.equal(master.id);
      expect((await procs('guarded')).map((p) => `${p.id} ${p.state}`)).to.deep.equal(before.map((p) => `${p.id} RUNNING`), 'no proc replaced');
      expect(fleet.log('scheduler')).to.match(/status update refused: the proc belongs to another agent/);
    } finally {
      rogue.close();
    }
  });

  it('skips a REPORT entry about another agent\'s proc: logged, and the API\'s stats of that proc unchanged', async () => {
    const master = (await procs('guarded')).find((p) => p.id === masterOf('guarded'))!;
    const rogue = new ProtocolAgent(fleet.apiUrl, 'rogue-reporter', key);
    clients.push(rogue);
    try {
      expect(await rogue.subscribe(await ProtocolAgent.sign(fleet.apiUrl, 'rogue-reporter', key, { hostname: '127.0.0.1' }))).to.equal(200);
      // Stamped a minute ahead: taken, they would win over every true figure for that minute.
      const forged = { uptime: 1, usedMemory: 987_654_321, clients: 4242, role: 'slave', replOffset: 0, masterLinkStatus: 'down', updatedAt: new Date(Date.now() + 60_000).toISOString() };
      const res = await rogue.call({ type: pb.Call.Type.REPORT, report: { procs: [{ task_id: { value: master.id }, stats: JSON.stringify(forged), silent_ms: 30_000 }] } });
      expect(res.status).to.equal(202);
      await sleep(1500);
      const after = (await procs('guarded')).find((p) => p.id === master.id) as ProcRow & { stats: { clients: number; usedMemory: number; role: string } };
      expect(after.stats).to.include({ role: 'master' });
      expect(after.stats.clients).to.not.equal(4242);
      expect(after.stats.usedMemory).to.not.equal(987_654_321);
      expect(fleet.log('scheduler')).to.match(/report entries refused: the procs belong to another agent/);
      expect(masterOf('guarded')).to.equal(master.id);
    } finally {
      rogue.close();
    }
  });

  it('refuses a replayed SUBSCRIBE and a second SUBSCRIBE for a connected agent; no proc is touched; /healthz says so', async () => {
    const before = await procs('guarded');
    const pids = fleet.redisPids().length;
    // Replay after a successful session: the nonce is spent.
    const once = await ProtocolAgent.sign(fleet.apiUrl, 'replayed', key, { hostname: '127.0.0.1' });
    const first = new ProtocolAgent(fleet.apiUrl, 'replayed', key);
    clients.push(first);
    expect(await first.subscribe(once)).to.equal(200);
    first.close();
    expect((await postCall(fleet.apiUrl, once.body, once.headers)).status).to.equal(401);
    // A correctly signed SUBSCRIBE with no tasks in the name of a connected agent that holds a proc.
    const victim = before[0].agent;
    const takeover = await ProtocolAgent.sign(fleet.apiUrl, victim, key, { hostname: '127.0.0.1', tasks: [] });
    const refused = await postCall(fleet.apiUrl, takeover.body, takeover.headers);
    expect(refused.status).to.equal(409);
    expect(JSON.parse(refused.text).error.code).to.equal('AGENT_CONNECTED');
    const replay = await postCall(fleet.apiUrl, takeover.body, takeover.headers);
    expect(replay.status).to.equal(401);
    expect(replay.text).to.match(/nonce/);
    const health = await fleet.api('GET', '/healthz');
    expect(health.status).to.equal(503);
    expect(health.json.ok).to.equal(false);
    expect(health.json.refusedAgents.map((r: { agent: string }) => r.agent)).to.include(victim);
    await sleep(1000);
    for (const p of before) expect(procState('guarded', p.id), p.id).to.equal('RUNNING');
    expect(fleet.redisPids().length).to.equal(pids);
    const agents = (await fleet.api('GET', '/api/agents')).json as { id: string; connected: boolean }[];
    expect(agents.find((a) => a.id === victim)?.connected).to.equal(true);
  });

  it('gives a fake agent no LAUNCH and no say over the announced address', async () => {
    // Without the fleet key: refused from the headers.
    const stranger = await ProtocolAgent.sign(fleet.apiUrl, 'impostor', 'not-the-fleet-key-0123456789', { hostname: '10.66.66.66' });
    expect((await postCall(fleet.apiUrl, stranger.body, stranger.headers)).status).to.equal(401);
    // A signed SUBSCRIBE whose body was swapped for one announcing another address.
    const genuine = await ProtocolAgent.sign(fleet.apiUrl, 'impostor', key, { hostname: '127.0.0.1' });
    expect((await postCall(fleet.apiUrl, stranger.body, { ...genuine.headers, 'Content-Length': String(stranger.body.length) })).status).to.equal(401);
    // Even a key holder must give an IP literal.
    const named = await ProtocolAgent.sign(fleet.apiUrl, 'impostor', key, { hostname: 'evil.example.com' });
    expect((await postCall(fleet.apiUrl, named.body, named.headers)).status).to.equal(400);
    expect((await fleet.api('POST', '/api/instances', { name: 'afterfake', capacityMb: 16, replicas: 1 })).status).to.equal(202);
    await fleet.waitForStatus('afterfake', 'RUNNING');
    const agents = (await fleet.api('GET', '/api/agents')).json as { id: string; ip: string }[];
    expect(agents.map((a) => a.id)).not.to.include('impostor');
    expect(agents.map((a) => a.ip)).not.to.include('10.66.66.66');
    for (const p of await procs('afterfake')) expect(p.ip).to.equal('127.0.0.1');
  });

  it('an agent pointed at a fake scheduler gives it nothing reusable, drops its stream and launches nothing', async () => {
    const port = await freePort();
    const captured: { headers: IncomingMessage['headers']; body: Buffer }[] = [];
    const sessionCalls: string[] = [];
    let streamsClosed = 0;
    fake = createServer((req, res) => {
      if (req.url === '/api/v1/agent/challenge') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ nonce: randomBytes(18).toString('base64url') }));
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (String(req.headers.authorization).startsWith('RedFleet-Session')) {
          sessionCalls.push(String(req.headers.authorization));
          res.writeHead(202).end();
          return;
        }
        captured.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'Content-Type': 'application/recordio' });
        const sealKey = randomBytes(32);
        res.write(encodeFrame(sealEvent(sealKey, 1, { type: pb.Event.Type.SUBSCRIBED, subscribed: { agent_id: { value: 'x' }, session: 'fake-session', proof: randomBytes(32), heartbeat_interval_seconds: 1 } })));
        const launch = pb.RedisLaunch.encode({ instance: 'guarded', proc_id: 'guarded::fake', role: pb.RedisLaunch.Role.MASTER, port: 41999, capacity_mb: 16, password_sha256: '0'.repeat(64) }).finish();
        res.write(encodeFrame(sealEvent(sealKey, 2, { type: pb.Event.Type.LAUNCH, launch: { task: { name: 'x', task_id: { value: 'guarded::fake' }, agent_id: { value: 'x' }, data: launch } } })));
        res.on('close', () => { streamsClosed += 1; });
      });
    });
    await new Promise<void>((r) => fake!.listen(port, '127.0.0.1', () => r()));
    const pids = fleet.redisPids().length;
    const workDir = join(fleet.dir, 'agents', 'fooled');
    const child = spawn(process.execPath, [CLI, 'agent', '--scheduler', `http://127.0.0.1:${port}`, '--etcd', fleet.etcd.url, '--prefix', '/FakeFleet',
      '--id', 'fooled', '--ip', '127.0.0.1', '--ports', '41990-41999', '--work-dir', workDir, '--fleet-key', fleet.fleetKeyPath], { stdio: 'ignore' });
    extra.push(child);
    await fleet.waitFor(() => streamsClosed >= 2 && captured.length >= 2, 15_000, 'the agent to drop two fake streams');
    await killAndWait(child, 'SIGTERM');
    expect(sessionCalls, 'no call carried the fake session').to.deep.equal([]);
    expect(fleet.redisPids().length, 'no redis-server was launched').to.equal(pids);
    // What the fake captured does not open a session at the real scheduler.
    for (const c of captured) {
      const headers = Object.fromEntries(Object.entries(c.headers).filter(([k]) => k !== 'host' && k !== 'connection').map(([k, v]) => [k, String(v)]));
      expect((await postCall(fleet.apiUrl, c.body, headers)).status).to.equal(401);
    }
  });

  it('refuses unauthenticated 1 MiB slow bodies from the headers alone, and its memory stays low', async () => {
    const schedulerPid = fleet.scheduler!.pid!;
    const rssBefore = rssMb(schedulerPid);
    const sockets: Socket[] = [];
    const answers: number[] = [];
    const closed: number[] = [];
    const started = Date.now();
    const nonce = await ProtocolAgent.challenge(fleet.apiUrl);
    for (let i = 0; i < 200; i++) {
      const auth = i % 2 === 0
        ? 'Authorization: RedFleet-HMAC AAAA\r\nX-RedFleet-Agent: agent1\r\nX-RedFleet-Nonce: ' + nonce + `\r\nX-RedFleet-Client-Nonce: ${'c'.repeat(24)}\r\nX-RedFleet-Body-Sha256: ${'0'.repeat(64)}\r\n`
        : '';
      const s = connect(fleet.apiPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.write(`POST /api/v1/agent HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${1024 * 1024}\r\n${auth}\r\n`);
      s.once('data', (d: Buffer) => answers.push(Number(/^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1] ?? 0)));
      s.on('close', () => closed.push(Date.now() - started));
      sockets.push(s);
    }
    const drip = setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write(Buffer.alloc(1024, 1)); }, 200);
    try {
      await fleet.waitFor(() => answers.length === 200, 5000, 'every slow caller to be answered');
      expect(Date.now() - started, 'answered from the headers, long before 1 MiB could arrive').to.be.below(5000);
      expect(new Set(answers)).to.deep.equal(new Set([401]));
      await fleet.waitFor(() => closed.length === 200, 8000, 'the refused connections to be closed');
      const rssAfter = rssMb(schedulerPid);
      console.log(`      200 slow 1 MiB bodies: scheduler RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MB, all closed within ${Math.max(...closed)} ms`);
      expect(rssAfter - rssBefore).to.be.below(40);
    } finally {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    }
    // An authenticated SUBSCRIBE that then stalls its body is cut off within seconds.
    const signed = await ProtocolAgent.sign(fleet.apiUrl, 'staller', key, { hostname: '127.0.0.1' });
    const stall = connect(fleet.apiPort, '127.0.0.1');
    stall.on('error', () => undefined);
    const head = Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}`).join('\r\n');
    stall.write(`POST /api/v1/agent HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n`);
    stall.write(signed.body.subarray(0, 3));
    const t0 = Date.now();
    const reply = await new Promise<string>((resolve) => stall.once('data', (d: Buffer) => resolve(d.toString())));
    expect(reply).to.match(/^HTTP\/1\.1 408/);
    expect(Date.now() - t0).to.be.below(7000);
    stall.destroy();
  });

  it('sends no offers or launches to an agent whose stream is silent', async () => {
    const mute = new ProtocolAgent(fleet.apiUrl, 'mute', key);
    clients.push(mute);
    expect(await mute.subscribe(await ProtocolAgent.sign(fleet.apiUrl, 'mute', key, { hostname: '127.0.0.1' }))).to.equal(200);
    await sleep(1500);
    mute.answerHeartbeats = false;
    await sleep(2600);
    // Four procs on four different agents: only possible with the silent one.
    expect((await fleet.api('POST', '/api/instances', { name: 'wide', capacityMb: 16, replicas: 3 })).status).to.equal(202);
    await fleet.waitFor(() => mute.closed, 5000, 'the silent agent to be dropped');
    const launches = mute.events.filter((e) => e.type === pb.Event.Type.LAUNCH).map((e) => e.launch?.task.task_id.value ?? '');
    expect(launches.filter((id) => id.startsWith('wide::'))).to.deep.equal([]);
    expect((await fleet.api('DELETE', '/api/instances/wide')).status).to.equal(202);
  });

  it('the scheduler asks for a heartbeat every second, and an agent drops a stream silent for 3 intervals', async () => {
    const probe = new ProtocolAgent(fleet.apiUrl, 'listener', key);
    clients.push(probe);
    expect(await probe.subscribe(await ProtocolAgent.sign(fleet.apiUrl, 'listener', key, { hostname: '127.0.0.1' }))).to.equal(200);
    await fleet.waitFor(() => probe.events.length > 0, 5000, 'SUBSCRIBED');
    expect(probe.events[0].subscribed?.heartbeat_interval_seconds).to.equal(1);
    probe.close();
    // A scheduler that proves itself (it holds the fleet key), then falls silent, as a partition would make it.
    const port = await freePort();
    const opened: number[] = [];
    const dropped: number[] = [];
    const silent = createServer((req, res) => {
      if (req.url === '/api/v1/agent/challenge') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ nonce: randomBytes(18).toString('base64url') }));
        return;
      }
      if (String(req.headers.authorization).startsWith('RedFleet-Session')) {
        req.resume();
        res.writeHead(202).end();
        return;
      }
      req.resume();
      const id = String(req.headers['x-redfleet-agent']);
      const [serverNonce, clientNonce] = [String(req.headers['x-redfleet-nonce']), String(req.headers['x-redfleet-client-nonce'])];
      const session = randomBytes(16).toString('base64url');
      res.writeHead(200, { 'Content-Type': 'application/recordio' });
      res.write(encodeFrame(sealEvent(eventKey(key, id, clientNonce, serverNonce, session), 1, { type: pb.Event.Type.SUBSCRIBED, subscribed: { agent_id: { value: id }, session, proof: schedulerProof(key, id, clientNonce, serverNonce, session), heartbeat_interval_seconds: 1 } })));
      opened.push(Date.now());
      res.on('close', () => dropped.push(Date.now()));
    });
    await new Promise<void>((r) => silent.listen(port, '127.0.0.1', () => r()));
    const child = spawn(process.execPath, [CLI, 'agent', '--scheduler', `http://127.0.0.1:${port}`, '--etcd', fleet.etcd.url, '--prefix', '/SilentFleet',
      '--id', 'patient', '--ip', '127.0.0.1', '--ports', '41980-41989', '--work-dir', join(fleet.dir, 'agents', 'patient'), '--fleet-key', fleet.fleetKeyPath], { stdio: 'ignore' });
    extra.push(child);
    try {
      await fleet.waitFor(() => dropped.length >= 1 && opened.length >= 2, 15_000, 'the agent to drop the silent stream and subscribe again');
    } finally {
      await killAndWait(child, 'SIGTERM');
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
    console.log(`      silent scheduler stream dropped ${dropped[0] - opened[0]} ms after SUBSCRIBED`);
    expect(dropped[0] - opened[0]).to.be.within(2500, 4500);
  });

  it('disconnects a SIGSTOPped agent in ~3 s, loses it at timeout + <= 1 s, and kills its written-off procs when it returns', async () => {
    await fleet.waitForStatus('guarded', 'RUNNING');
    const replica = (await procs('guarded')).find((p) => p.id !== masterOf('guarded'))!;
    const replicaPid = replica.pid ?? 0;
    expect(pidAlive(replicaPid)).to.equal(true);
    const child = fleet.agents.get(replica.agent)!;
    const cut = Date.now();
    child.kill('SIGSTOP');
    try {
      await fleet.waitFor(async () => ((await fleet.api('GET', '/api/agents')).json as { id: string; connected: boolean }[]).find((a) => a.id === replica.agent)?.connected !== true, 6000, 'the silent agent to be disconnected');
      const disconnectedAfter = Date.now() - cut;
      await fleet.waitFor(() => procState('guarded', replica.id) === 'LOST' || procState('guarded', replica.id) === '', 8000, 'the replica to be LOST');
      const lostAfter = Date.now() - cut;
      console.log(`      SIGSTOP: disconnected after ${disconnectedAfter} ms, proc LOST after ${lostAfter} ms (agent timeout 6000 ms)`);
      expect(disconnectedAfter).to.be.within(2000, 4500);
      expect(lostAfter).to.be.below(6000 + 1000 + 500, 'lost within the agent timeout + 1 s of the cut (+0.5 s to see it in etcd)');
    } finally {
      child.kill('SIGCONT');
    }
    // Back, it still runs the old replica: the scheduler wrote it off, so it is killed at once.
    await fleet.waitFor(() => !pidAlive(replicaPid), 10_000, 'the written-off replica to be killed');
    expect(fleet.log('scheduler')).to.match(/killing a task the scheduler wrote off/);
    await fleet.waitForStatus('guarded', 'RUNNING');
  });
});
