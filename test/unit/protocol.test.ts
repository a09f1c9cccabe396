import { expect } from 'chai';
import { encodeFrame, FrameDecoder } from '../../src/proto/recordio.js';
import { pb, fromResourceList, toResourceList, subtractPorts, parsePortRange } from '../../src/proto/messages.js';
import { ProtocolError } from '../../src/errors.js';

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
