import { expect } from 'chai';
import { encodeFrame, FrameDecoder } from '../../src/proto/recordio.js';
import { pb, fromResourceList, toResourceList, subtractPorts, parsePortRange } from '../../src/proto/messages.js';
import { PassThrough } from 'node:stream';
import { BodyTimeoutError, BodyTooLargeError, ProtocolError } from '../../src/errors.js';
import { openEvent, sealEvent } from '../../src/proto/sealed-event.js';
import { dataKey, eventKey, schedulerProof, subscribeSignature } from '../../src/store/secrets.js';
import { readBody } from '../../src/net.js';

describe('RecordIO framing', () => {
  it('round-trips frames split at every byte boundary', () => {
    const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from('x'.repeat(300))];
    const wire = Buffer.concat(payloads.map(encodeFrame));
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(got.map((b) => b.toString())).to.deep.equal(payloads.map((b) => b.toString()));
    }
  });

  it('decodes byte by byte', () => {
    const wire = Buffer.concat([encodeFrame(Buffer.from('ab')), encodeFrame(Buffer.from('cde'))]);
    const d = new FrameDecoder();
    const got: string[] = [];
    for (const byte of wire) for (const f of d.push(Buffer.from([byte]))) got.push(f.toString());
    expect(got).to.deep.equal(['ab', 'cde']);
  });

  it('refuses a non-decimal length, an oversize length and an endless prefix', () => {
    expect(() => new FrameDecoder().push(Buffer.from('12a\nxx'))).to.throw(ProtocolError, /not a decimal/);
    expect(() => new FrameDecoder(1024).push(Buffer.from('2048\n'))).to.throw(ProtocolError, /over the 1024-byte limit/);
    expect(() => new FrameDecoder().push(Buffer.from('1'.repeat(40)))).to.throw(ProtocolError, /too long/);
    expect(() => new FrameDecoder().push(Buffer.from('-1\n'))).to.throw(ProtocolError);
  });

  it('stays failed after an error', () => {
    const d = new FrameDecoder();
    expect(() => d.push(Buffer.from('zz\n'))).to.throw(ProtocolError);
    expect(() => d.push(encodeFrame(Buffer.from('ok')))).to.throw(ProtocolError, /already failed/);
  });
});

describe('protobuf messages', () => {
  it('encode and decode an Event with a LAUNCH carrying a RedisLaunch', () => {
    const data = pb.RedisLaunch.encode({ instance: 'cache1', proc_id: 'cache1::x', role: pb.RedisLaunch.Role.SLAVE, port: 7001, capacity_mb: 64, master_ip: '127.0.0.1', master_port: 7000, password_sha256: 'ab' }).finish();
    const wire = pb.Event.encode({
      type: pb.Event.Type.LAUNCH,
      launch: { task: { name: 'r', task_id: { value: 'cache1::x' }, agent_id: { value: 'agent1' }, resources: toResourceList({ cpus: 0.1, mem: 64, ports: [{ begin: 7001, end: 7001 }] }), data } },
    }).finish();
    const event = pb.Event.decode(wire);
    expect(event.type).to.equal(pb.Event.Type.LAUNCH);
    expect(fromResourceList(event.launch!.task.resources)).to.deep.equal({ cpus: 0.1, mem: 64, ports: [{ begin: 7001, end: 7001 }] });
    const launch = pb.RedisLaunch.decode(event.launch!.task.data!);
    expect(launch.master_port).to.equal(7000);
    expect(launch.role).to.equal(pb.RedisLaunch.Role.SLAVE);
  });

  it('keeps Mesos field numbers for TaskStatus (task_id 1, state 2, uuid 11)', () => {
    const wire = Buffer.from(pb.TaskStatus.encode({ task_id: { value: 't' }, state: pb.TaskState.TASK_RUNNING, uuid: Buffer.from([1]) }).finish());
    expect(wire[0]).to.equal((1 << 3) | 2);
    expect(wire.includes(Buffer.from([(2 << 3) | 0, 1]))).to.equal(true);
    expect(wire.includes(Buffer.from([(11 << 3) | 2, 1, 1]))).to.equal(true);
  });

  it('rejects garbage and messages missing required fields', () => {
    expect(() => pb.Call.decode(Buffer.from([0xff, 0xff, 0xff]))).to.throw();
    expect(() => pb.Call.decode(Buffer.alloc(0))).to.throw(/type/);
  });

  it('does port range arithmetic', () => {
    expect(subtractPorts([{ begin: 1, end: 5 }], [1, 3, 5])).to.deep.equal([{ begin: 2, end: 2 }, { begin: 4, end: 4 }]);
    expect(parsePortRange('7000-7099')).to.deep.equal({ begin: 7000, end: 7099 });
    expect(() => parsePortRange('7099-7000')).to.throw(/FIRST-LAST/);
    expect(() => parsePortRange('70000-70001')).to.throw();
  });
});

describe('sealed event frames and session signatures', () => {
  const key = Buffer.alloc(32, 7);
  const heartbeat = { type: pb.Event.Type.HEARTBEAT };

  it('opens what it sealed, in order', () => {
    const frames = [1, 2, 3].map((seq) => sealEvent(key, seq, seq === 2 ? { type: pb.Event.Type.KILL, kill: { task_id: { value: 't' } } } : heartbeat));
    expect(openEvent(key, 1, frames[0]).type).to.equal(pb.Event.Type.HEARTBEAT);
    expect(openEvent(key, 2, frames[1]).kill?.task_id.value).to.equal('t');
    expect(Number(openEvent(key, 3, frames[2]).seq)).to.equal(3);
  });

  it('refuses a frame with any byte changed, another key, a replayed or skipped position, or no seal', () => {
    const frame = sealEvent(key, 5, { type: pb.Event.Type.KILL, kill: { task_id: { value: 'cache::a' } } });
    for (let i = 0; i < frame.length; i++) {
      const bent = Buffer.from(frame);
      bent[i] ^= 0x01;
      expect(() => openEvent(key, 5, bent), `byte ${i}`).to.throw(ProtocolError);
    }
    expect(() => openEvent(Buffer.alloc(32, 8), 5, frame)).to.throw(ProtocolError, /MAC/);
    expect(() => openEvent(key, 6, frame)).to.throw(ProtocolError, /out of order/);
    expect(() => openEvent(key, 4, frame)).to.throw(ProtocolError, /out of order/);
    expect(() => openEvent(key, 1, Buffer.from(pb.Event.encode(heartbeat).finish()))).to.throw(ProtocolError, /not sealed/);
  });

  it('binds a SUBSCRIBE signature to the key, the agent, both nonces and the body', () => {
    const base = subscribeSignature('k'.repeat(32), 'agent1', 'server-nonce-0001', 'client-nonce-0001', 'a'.repeat(64));
    expect(base).to.equal(subscribeSignature('k'.repeat(32), 'agent1', 'server-nonce-0001', 'client-nonce-0001', 'a'.repeat(64)));
    expect(subscribeSignature('j'.repeat(32), 'agent1', 'server-nonce-0001', 'client-nonce-0001', 'a'.repeat(64))).to.not.equal(base);
    expect(subscribeSignature('k'.repeat(32), 'agent2', 'server-nonce-0001', 'client-nonce-0001', 'a'.repeat(64))).to.not.equal(base);
    expect(subscribeSignature('k'.repeat(32), 'agent1', 'server-nonce-0002', 'client-nonce-0001', 'a'.repeat(64))).to.not.equal(base);
    expect(subscribeSignature('k'.repeat(32), 'agent1', 'server-nonce-0001', 'client-nonce-0002', 'a'.repeat(64))).to.not.equal(base);
    expect(subscribeSignature('k'.repeat(32), 'agent1', 'server-nonce-0001', 'client-nonce-0001', 'b'.repeat(64))).to.not.equal(base);
    // The scheduler's proof and the event key differ from each other and per session.
    const proof = schedulerProof('k'.repeat(32), 'agent1', 'c', 's', 'session1');
    expect(proof.equals(eventKey('k'.repeat(32), 'agent1', 'c', 's', 'session1'))).to.equal(false);
    expect(proof.equals(schedulerProof('k'.repeat(32), 'agent1', 'c', 's', 'session2'))).to.equal(false);
  });

  it('derives framework secrets from the previous key during a rotation', () => {
    expect(dataKey('new-key', 'old-key')).to.equal('old-key');
    expect(dataKey('new-key')).to.equal('new-key');
  });
});

describe('readBody', () => {
  it('gives up on a body that is not complete in time, and on one over its limit', async () => {
    const slow = new PassThrough();
    slow.write(Buffer.alloc(10));
    const started = Date.now();
    const err = await readBody(slow, 1024, 200).then(() => undefined, (e: Error) => e);
    expect(err).to.be.instanceOf(BodyTimeoutError);
    expect(Date.now() - started).to.be.below(1000);
    const big = new PassThrough();
    const tooLarge = readBody(big, 16, 1000).then(() => undefined, (e: Error) => e);
    big.end(Buffer.alloc(32));
    expect(await tooLarge).to.be.instanceOf(BodyTooLargeError);
    const fine = new PassThrough();
    const ok = readBody(fine, 16, 1000);
    fine.end(Buffer.from('hello'));
    expect((await ok).toString()).to.equal('hello');
  });
});
