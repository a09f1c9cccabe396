import { expect } from 'chai';
import { RespParser, encode, map, bulk, array, int, push } from '../../src/api/resp.js';
import { globMatch } from '../../src/api/glob.js';
import { ProtocolError } from '../../src/errors.js';
import { compareCandidates, type Candidate } from '../../src/scheduler/failover.js';
import type { Proc } from '../../src/store/model.js';

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

describe('promotion order', () => {
  const c = (id: string, priority: number, offset: number): Candidate => ({ proc: { id } as Proc, priority, offset, linkDownSeconds: 0 });

  it('prefers the lowest priority, then the highest offset, then the proc id', () => {
    const list = [c('b', 100, 10), c('a', 100, 10), c('z', 50, 1), c('c', 100, 99)];
    expect(list.sort(compareCandidates).map((x) => x.proc.id)).to.deep.equal(['z', 'c', 'a', 'b']);
  });
});
