import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, closeSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHECKPOINT_FILE, CheckpointFile, writeFileAtomic, type ProcCheckpoint } from '../../src/executor/checkpoint.js';
import { decideAdoption, type ProcAssignment, type ProcProbe } from '../../src/executor/adoption.js';
import { pidRunning } from '../../src/executor/pid-watch.js';
import { createLogger } from '../../src/logger.js';

const log = createLogger('test', {});
log.silent = true;

function checkpoint(overrides: Partial<ProcCheckpoint> = {}): ProcCheckpoint {
  return {
    procId: `cache-1::${randomUUID()}`,
    instance: 'cache-1',
    pid: 4242,
    ip: '127.0.0.1',
    port: 7001,
    runId: 'a'.repeat(40),
    role: 'master',
    target: null,
    epoch: 3,
    dir: '/work/agents/a1/cache-1__x',
    task: 'CgA=',
    savedAt: new Date().toISOString(),
    ...overrides,
  };
}

describe('agent checkpoint file', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'redfleet-checkpoint-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is written owner-only (0600) and read back by the next life of the agent', () => {
    const file = new CheckpointFile(dir, log);
    const a = checkpoint();
    const b = checkpoint({ role: 'replica', target: { ip: '127.0.0.1', port: 7002 } });
    file.put(a);
    file.put(b);
    expect(statSync(join(dir, CHECKPOINT_FILE)).mode & 0o777).to.equal(0o600);
    const next = new CheckpointFile(dir, log).load();
    expect(next).to.deep.equal([a, b]);
  });

  it('drops an ended proc and keeps the others, also across lives', () => {
    const file = new CheckpointFile(dir, log);
    const a = checkpoint();
    const b = checkpoint();
    file.put(a);
    file.put(b);
    const second = new CheckpointFile(dir, log);
    second.load();
    second.remove(a.procId);
    expect(new CheckpointFile(dir, log).load().map((e) => e.procId)).to.deep.equal([b.procId]);
  });

  it('replaces the file by rename: a reader holding the old file sees the old content whole, and no temp file stays', () => {
    const path = join(dir, 'f.json');
    writeFileAtomic(path, 'old content', 0o600);
    const before = statSync(path).ino;
    const fd = openSync(path, 'r');
    writeFileAtomic(path, 'new content', 0o600);
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, 64, 0);
    closeSync(fd);
    expect(buf.subarray(0, n).toString()).to.equal('old content');
    expect(readFileSync(path, 'utf8')).to.equal('new content');
    expect(statSync(path).ino).to.not.equal(before);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    expect(readdirSync(dir)).to.deep.equal(['f.json']);
  });

  it('ignores a half-written temp file left by a crash, and survives the next write', () => {
    const file = new CheckpointFile(dir, log);
    const a = checkpoint();
    file.put(a);
    writeFileSync(join(dir, `${CHECKPOINT_FILE}.tmp`), '{"format":1,"procs":[{"procId"');
    expect(new CheckpointFile(dir, log).load()).to.deep.equal([a]);
    file.put(checkpoint());
    expect(new CheckpointFile(dir, log).load()).to.have.length(2);
  });

  it('reads an unreadable or foreign file as no checkpoint (the old orphan rule then applies)', () => {
    writeFileSync(join(dir, CHECKPOINT_FILE), 'not json');
    expect(new CheckpointFile(dir, log).load()).to.deep.equal([]);
    writeFileSync(join(dir, CHECKPOINT_FILE), JSON.stringify({ format: 99, procs: [checkpoint()] }));
    expect(new CheckpointFile(dir, log).load()).to.deep.equal([]);
    writeFileSync(join(dir, CHECKPOINT_FILE), JSON.stringify({ format: 1, procs: [checkpoint({ pid: 0 }), { procId: 'x' }, checkpoint({ pid: 7 })] }));
    expect(new CheckpointFile(dir, log).load().map((e) => e.pid)).to.deep.equal([7]);
  });
});

describe('agent recovery: adopt or kill (decideAdoption)', () => {
  const agent = 'agent1';
  const cp = checkpoint();
  const sameProcess: ProcProbe = { alive: true, info: { runId: cp.runId, processId: cp.pid, port: cp.port, role: 'master' } };
  const owned: ProcAssignment = { instanceStatus: 'RUNNING', mname: cp.procId, epoch: cp.epoch, proc: { sid: agent, state: 'RUNNING', msg: '' } };
  const replica = checkpoint({ role: 'replica', target: { ip: '127.0.0.1', port: 7002 } });
  const replicaProbe: ProcProbe = { alive: true, info: { runId: replica.runId, processId: replica.pid, port: replica.port, role: 'slave' } };
  const replicaOwned: ProcAssignment = { instanceStatus: 'RUNNING', mname: 'cache-1::other', epoch: 9, proc: { sid: agent, state: 'RUNNING', msg: '' } };

  const reason = (d: ReturnType<typeof decideAdoption>) => (d.adopt ? 'adopt' : d.reason);

  it('adopts the same process that etcd still gives to this agent', () => {
    expect(decideAdoption(cp, sameProcess, owned, agent)).to.deep.equal({ adopt: true });
    expect(decideAdoption(replica, replicaProbe, replicaOwned, agent)).to.deep.equal({ adopt: true });
    // DEGRADED and CREATING instances are active too.
    expect(decideAdoption(cp, sameProcess, { ...owned, instanceStatus: 'DEGRADED' }, agent)).to.deep.equal({ adopt: true });
  });

  it('kills what is not provably the process it launched', () => {
    expect(reason(decideAdoption(cp, { alive: false }, owned, agent))).to.match(/no redis-server runs as pid 4242/);
    expect(reason(decideAdoption(cp, { alive: true, error: 'WRONGPASS' }, owned, agent))).to.match(/does not answer as the framework user \(WRONGPASS\)/);
    expect(reason(decideAdoption(cp, { alive: true, info: { ...sameProcess.info!, runId: 'b'.repeat(40) } }, owned, agent))).to.match(/run_id/);
    expect(reason(decideAdoption(cp, { alive: true, info: { ...sameProcess.info!, processId: 999 } }, owned, agent))).to.match(/served by pid 999/);
    expect(reason(decideAdoption(cp, { alive: true, info: { ...sameProcess.info!, port: 7009 } }, owned, agent))).to.match(/listens on port 7009/);
  });

  it('kills what etcd no longer gives to this agent', () => {
    expect(reason(decideAdoption(cp, sameProcess, undefined, agent))).to.match(/no longer has this proc/);
    expect(reason(decideAdoption(cp, sameProcess, { ...owned, proc: undefined }, agent))).to.match(/no longer has this proc/);
    expect(reason(decideAdoption(cp, sameProcess, { ...owned, instanceStatus: 'DELETING' }, agent))).to.match(/instance is DELETING/);
    expect(reason(decideAdoption(cp, sameProcess, { ...owned, proc: { ...owned.proc!, sid: 'agent2' } }, agent))).to.match(/on agent agent2/);
    expect(reason(decideAdoption(cp, sameProcess, { ...owned, proc: { ...owned.proc!, msg: 'SHUTDOWN' } }, agent))).to.match(/shut down/);
    // The agent had reset the SHUTDOWN and died before its redis-server did: the mark remains.
    expect(reason(decideAdoption(replica, replicaProbe, { ...replicaOwned, proc: { ...replicaOwned.proc!, msg: '', shutdownAt: '2026-11-30T04:00:00.000Z' } }, agent))).to.match(/shut down/);
    expect(reason(decideAdoption(replica, replicaProbe, { ...replicaOwned, proc: { ...replicaOwned.proc!, state: 'LOST' } }, agent))).to.match(/wrote it off \(LOST\)/);
    expect(reason(decideAdoption(replica, replicaProbe, { ...replicaOwned, proc: { ...replicaOwned.proc!, state: 'FAILED' } }, agent))).to.match(/wrote it off \(FAILED\)/);
  });

  it('kills a master failed over while the agent was away: it must never serve again', () => {
    const failedOver = { ...owned, mname: 'cache-1::new-master', epoch: cp.epoch + 1 };
    expect(reason(decideAdoption(cp, sameProcess, failedOver, agent))).to.match(/master is now cache-1::new-master/);
    // Failed over and back again: the same Mname, but it missed what the other master took.
    expect(reason(decideAdoption(cp, sameProcess, { ...owned, epoch: cp.epoch + 2 }, agent))).to.match(/epoch 3.*epoch 5/);
    // A replica whose server says master (promoted locally) while etcd names another master.
    expect(reason(decideAdoption(replica, { ...replicaProbe, info: { ...replicaProbe.info!, role: 'master' } }, replicaOwned, agent))).to.match(/failed over/);
  });

  it('adopts an old master that a switchover demoted while the agent was away: it serves as a replica now', () => {
    const demoted = { ...owned, mname: 'cache-1::new-master', epoch: cp.epoch + 1, proc: { ...owned.proc!, msg: 'SLAVEOF 127.0.0.1 7002' } };
    expect(decideAdoption(cp, { ...sameProcess, info: { ...sameProcess.info!, role: 'slave' } }, demoted, agent)).to.deep.equal({ adopt: true });
  });

  it('adopts a replica promoted while the agent was away (its MASTER message is carried out after)', () => {
    const promoted = { ...replicaOwned, mname: replica.procId, epoch: 10 };
    expect(decideAdoption(replica, replicaProbe, promoted, agent)).to.deep.equal({ adopt: true });
    // ... also when the agent died after promoting it but before checkpointing the new role.
    expect(decideAdoption(replica, { ...replicaProbe, info: { ...replicaProbe.info!, role: 'master' } }, promoted, agent)).to.deep.equal({ adopt: true });
  });

  it('adopts a master written off with its agent that is still the master (nothing was promoted)', () => {
    expect(decideAdoption(cp, sameProcess, { ...owned, proc: { ...owned.proc!, state: 'LOST' } }, agent)).to.deep.equal({ adopt: true });
  });
});

describe('pidRunning', () => {
  it('tells a running process from a gone one', () => {
    expect(pidRunning(process.pid)).to.equal(true);
    expect(pidRunning(2 ** 22 + 12345)).to.equal(false);
  });
});
