import { expect } from 'chai';
import { MAX_REQUEST_BYTES, RespParser, encode, map, bulk, array, int, push } from '../../src/sentinel/resp.js';
import { globMatch } from '../../src/sentinel/glob.js';
import { addressBucket } from '../../src/sentinel/connection.js';
import { eventInstance } from '../../src/sentinel/pubsub.js';
import { ProtocolError } from '../../src/errors.js';
import { compareCandidates, type Candidate } from '../../src/scheduler/failover.js';
import type { Proc } from '../../src/domain/model.js';

describe('RESP parsing and encoding', () => {
  it('parses multibulk and inline commands split anywhere', () => {
    const wire = Buffer.from('*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$6\r\ncache1\r\nPING\r\n');
    for (let cut = 0; cut <= wire.length; cut++) {
      const p = new RespParser();
      const got = [...p.push(wire.subarray(0, cut)), ...p.push(wire.subarray(cut))];
      expect(got).to.deep.equal([['SENTINEL', 'get-master-addr-by-name', 'cache1'], ['PING']]);
    }
  });

  it('refuses huge bulk lengths, huge arg counts, bad framing', () => {
    expect(() => new RespParser().push(Buffer.from('*1\r\n$999999999\r\n'))).to.throw(ProtocolError, /bulk length/);
    expect(() => new RespParser().push(Buffer.from('*99999999\r\n'))).to.throw(ProtocolError, /multibulk/);
    expect(() => new RespParser().push(Buffer.from('*1\r\n+x\r\n'))).to.throw(ProtocolError, /expected '\$'/);
    expect(() => new RespParser().push(Buffer.from('*1\r\n$1\r\nxyz'))).to.throw(ProtocolError, /CRLF/);
    expect(() => new RespParser().push(Buffer.from(`*${'9'.repeat(100)}`))).to.throw(ProtocolError);
    expect(() => new RespParser().push(Buffer.alloc(70 * 1024, 0x41))).to.throw(ProtocolError, /inline/);
  });

  it('parses a pipeline fed one byte at a time', () => {
    const big = 'x'.repeat(10_000);
    const wire = Buffer.from(`*2\r\n$4\r\nPING\r\n$${big.length}\r\n${big}\r\nCLIENT  SETNAME a\r\n*0\r\n*1\r\n$4\r\nQUIT\r\n`);
    const p = new RespParser();
    const got: string[][] = [];
    for (let i = 0; i < wire.length; i++) got.push(...p.push(wire.subarray(i, i + 1)));
    expect(got).to.deep.equal([['PING', big], ['CLIENT', 'SETNAME', 'a'], ['QUIT']]);
  });

  it('parses in linear time: a near-cap request in 1-byte chunks, and a long pipeline in small chunks', () => {
    // 1,000 arguments of 50 bytes: about 56 KiB in one request. Re-parsing it from its first byte
    // on every chunk (the old parser) costs about 56,000 x 1,000 argument parses: many seconds.
    const args = Array.from({ length: 1000 }, (_, i) => `${i}`.padStart(50, 'a'));
    const request = Buffer.from(`*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`);
    expect(request.length).to.be.below(MAX_REQUEST_BYTES);
    let t0 = Date.now();
    const p = new RespParser();
    const got: string[][] = [];
    for (let i = 0; i < request.length; i++) got.push(...p.push(request.subarray(i, i + 1)));
    const oneRequestMs = Date.now() - t0;
    expect(got).to.deep.equal([args]);
    expect(oneRequestMs, `${request.length} bytes in 1-byte chunks took ${oneRequestMs} ms`).to.be.below(1500);

    // 100,000 pipelined commands (1.6 MB) in 7-byte chunks.
    const pipeline = Buffer.from('*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nPING\r\n$1\r\nx\r\n'.repeat(50_000));
    t0 = Date.now();
    const q = new RespParser();
    let commands = 0;
    for (let i = 0; i < pipeline.length; i += 7) commands += q.push(pipeline.subarray(i, i + 7)).length;
    const pipelineMs = Date.now() - t0;
    expect(commands).to.equal(100_000);
    expect(pipelineMs, `${pipeline.length} bytes in 7-byte chunks took ${pipelineMs} ms`).to.be.below(3000);
  });

  it('refuses a request over 64 KiB as soon as a header announces it', () => {
    const p = new RespParser();
    // The first bulk of a `*1024` request of 64 KiB bulks already passes the cap: refused before its body.
    expect(() => p.push(Buffer.from(`*1024\r\n$${64 * 1024}\r\n`))).to.throw(ProtocolError, /request larger than 65536 bytes/);
    // Many small bulks that add up past the cap are refused too.
    const q = new RespParser();
    const chunk = Buffer.from(`$${60_000}\r\n${'y'.repeat(60_000)}\r\n`);
    q.push(Buffer.from('*2\r\n'));
    q.push(chunk);
    expect(() => q.push(chunk)).to.throw(ProtocolError, /request larger/);
    // Just under the cap is fine, and the next request starts counting from zero.
    const r = new RespParser();
    const body = 'z'.repeat(MAX_REQUEST_BYTES - 40);
    const one = `*1\r\n$${body.length}\r\n${body}\r\n`;
    expect(r.push(Buffer.from(one + one))).to.deep.equal([[body], [body]]);
  });

  it('writes maps as RESP3 maps or RESP2 flat arrays, and nulls per protocol', () => {
    const m = map([['name', bulk('cache1')], ['n', int(2)]]);
    expect(encode(m, true)).to.equal('%2\r\n$4\r\nname\r\n$6\r\ncache1\r\n$1\r\nn\r\n:2\r\n');
    expect(encode(m, false)).to.equal('*4\r\n$4\r\nname\r\n$6\r\ncache1\r\n$1\r\nn\r\n:2\r\n');
    expect(encode(array(null), false)).to.equal('*-1\r\n');
    expect(encode(array(null), true)).to.equal('_\r\n');
    expect(encode(push([bulk('message')]), true)).to.equal('>1\r\n$7\r\nmessage\r\n');
  });

  it('matches Redis globs', () => {
    expect(globMatch('*', '+switch-master')).to.equal(true);
    expect(globMatch('+switch-*', '+switch-master')).to.equal(true);
    expect(globMatch('+s?own', '+sdown')).to.equal(true);
    expect(globMatch('[-+]sdown', '-sdown')).to.equal(true);
    expect(globMatch('+odown', '+sdown')).to.equal(false);
  });
});

describe('Sentinel endpoint helpers', () => {
  it('reads the instance from every event message shape the failover emits', () => {
    expect(eventInstance('master cache1 127.0.0.1 6380')).to.equal('cache1');
    expect(eventInstance('master cache1 127.0.0.1 6380 #quorum 2/2')).to.equal('cache1');
    expect(eventInstance('slave 127.0.0.1:6381 127.0.0.1 6381 @ cache1 127.0.0.1 6380')).to.equal('cache1');
    expect(eventInstance('cache1 127.0.0.1 6380 127.0.0.1 6381')).to.equal('cache1');
  });

  it('counts connections per IPv4 address and per IPv6 /64', () => {
    expect(addressBucket('10.1.2.3')).to.equal('10.1.2.3');
    expect(addressBucket('::ffff:10.1.2.3')).to.equal('10.1.2.3');
    expect(addressBucket('2001:db8:1:2:aaaa::1')).to.equal(addressBucket('2001:db8:1:2:bbbb::9'));
    expect(addressBucket('2001:db8:1:2::1')).not.to.equal(addressBucket('2001:db8:1:3::1'));
  });
});

describe('promotion order', () => {
  const c = (id: string, priority: number, offset: number): Candidate => ({ proc: { id } as Proc, priority, offset, linkDownSeconds: 0 });

  it('prefers the lowest priority, then the highest offset, then the proc id', () => {
    const list = [c('b', 100, 10), c('a', 100, 10), c('z', 50, 1), c('c', 100, 99)];
    expect(list.sort(compareCandidates).map((x) => x.proc.id)).to.deep.equal(['z', 'c', 'a', 'b']);
  });
});
