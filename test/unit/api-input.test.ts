import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { firstNonIntegerNumber, parseStrictJson, validateCreateBody, validatePatchBody, validateV1Body } from '../../src/api/validate.js';
import { clientAddress, parseAddress, quotaKey } from '../../src/api/access.js';
import { admit } from '../../src/api/admission.js';
import { InvalidInputError, NeverPlaceableError } from '../../src/errors.js';
import { explainError } from '../../src/cli/explain.js';
import { cliExample } from '../../src/cli/dev.js';
import type { AgentView } from '../../src/scheduler/offers.js';

/** The body of a request as a client sent it: parsed strictly, then checked by `check`. */
function field(raw: string, check: (body: unknown) => unknown): string | undefined {
  try {
    check(parseStrictJson(raw));
    return undefined;
  } catch (err) {
    expect(err).to.be.instanceOf(InvalidInputError);
    return (err as InvalidInputError).field;
  }
}

describe('strict JSON numbers', () => {
  const create = (body: unknown) => validateCreateBody(body, 1024);

  it('refuses every non-integer spelling of a number, naming the field, in a create', () => {
    for (const capacity of ['"64"', '1e1', '1E1', '16.0000000000000001', '64.0', '6.4e1', '-0.0', '1e400', '64.5']) {
      const raw = `{"name":"c","capacityMb":${capacity},"replicas":1}`;
      expect(field(raw, create), raw).to.equal('capacityMb');
    }
    expect(field('{"name":"c","capacityMb":64,"replicas":2.0}', create)).to.equal('replicas');
    expect(field('{"name":"c","capacityMb":64,"ttlSeconds":"60"}', create)).to.equal('ttlSeconds');
    expect(field('{"name":"c","capacityMb":64,"downAfterMs":5e2}', create)).to.equal('downAfterMs');
  });

  it('accepts plain integers, and digits inside strings are not numbers', () => {
    expect(create(parseStrictJson('{ "name" : "c1-2", "capacityMb" : 64, "replicas": 0 }'))).to.include({ capacityMb: 64, replicas: 0 });
    expect(firstNonIntegerNumber('{"name":"1.5e3","x":"\\"2.0\\"","n":-12}')).to.equal(undefined);
    expect(firstNonIntegerNumber('{"a":[1,2.5]}')).to.deep.equal({ field: 'a', token: '2.5' });
    expect(firstNonIntegerNumber('7.0')).to.deep.equal({ field: 'body', token: '7.0' });
  });

  it('applies to PATCH and to the v1 CREATE body', () => {
    for (const ttl of ['"60"', '60.0', '6e1', '60.0000000000000001']) {
      expect(field(`{"ttlSeconds":${ttl}}`, (b) => validatePatchBody(b)), ttl).to.equal('ttlSeconds');
    }
    expect(field('{"ttlSeconds":60}', (b) => validatePatchBody(b))).to.equal(undefined);
    for (const d of ['"1"', '1.0', '1e0', '1.0000000000000001']) {
      expect(field(`{"Distribution":${d}}`, validateV1Body), d).to.equal('Distribution');
    }
    expect(field('{"Distribution":1,"TTL":60.0}', validateV1Body)).to.equal('TTL');
    expect(field('{"Distribution":2,"TTL":60}', validateV1Body)).to.equal(undefined);
  });

  it('still refuses text that is not JSON', () => {
    expect(field('{"name":', create)).to.equal('body');
  });
});

describe('anonymous quota key', () => {
  it('counts IPv4 per address and IPv6 per /64, IPv4-mapped IPv6 as IPv4', () => {
    expect(quotaKey('192.0.2.7')).to.equal('192.0.2.7');
    expect(quotaKey('::ffff:192.0.2.7')).to.equal('192.0.2.7');
    expect(quotaKey('2001:db8:1:2::1')).to.equal('2001:db8:1:2::/64');
    expect(quotaKey('2001:db8:1:2:ffff:eeee:dddd:cccc')).to.equal(quotaKey('2001:0db8:0001:0002::9'));
    expect(quotaKey('2001:db8:1:3::1')).not.to.equal(quotaKey('2001:db8:1:2::1'));
  });

  it('parses only real addresses', () => {
    expect(parseAddress('10.0.0.1')).to.equal('10.0.0.1');
    expect(parseAddress(' 2001:DB8::1 ')).to.equal('2001:db8::1');
    for (const bad of ['', 'evil', '0x7f.1', '127.1', '1.2.3.4.5', 'fe80::1%eth0', '1.2.3.256', 'unknown']) {
      expect(parseAddress(bad), bad).to.equal(undefined);
    }
  });

  it('refuses an X-Forwarded-For hop that is not an IP, but only from a trusted proxy', () => {
    const req = (peer: string, xff?: string) => ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;
    const trusted = new Set(['127.0.0.1']);
    expect(clientAddress(req('::ffff:127.0.0.1', '2001:db8::5'), trusted)).to.equal('2001:db8::5');
    expect(clientAddress(req('127.0.0.1', '198.51.100.1, 127.0.0.1'), trusted)).to.equal('198.51.100.1');
    expect(clientAddress(req('203.0.113.9', 'not-an-ip'), trusted)).to.equal('203.0.113.9');
    expect(() => clientAddress(req('127.0.0.1', 'not-an-ip'), trusted)).to.throw(InvalidInputError).with.property('field', 'X-Forwarded-For');
    expect(() => clientAddress(req('127.0.0.1', '198.51.100.1, <script>'), trusted)).to.throw(InvalidInputError);
  });
});

describe('create admission', () => {
  const agent = (id: string, mem: number, free = mem, connected = true): AgentView => ({
    id, hostname: id, ip: '127.0.0.1', connected, total: { cpus: 2, mem, ports: [] }, free: { cpus: 2, mem: free, ports: [] }, tasks: [], subscribedAt: '',
  });
  const three = [agent('a1', 1024), agent('a2', 1024), agent('a3', 1024)];

  it('refuses with 409 and the numbers what the connected agents could never hold', () => {
    const refused = (ask: { capacityMb: number; replicas: number; distribution: number }) => {
      try {
        admit(ask, three);
      } catch (err) {
        expect(err).to.be.instanceOf(NeverPlaceableError);
        return err as NeverPlaceableError;
      }
      return undefined;
    };
    const tooMany = refused({ capacityMb: 900, replicas: 5, distribution: 1 });
    expect(tooMany?.status).to.equal(409);
    expect(tooMany?.code).to.equal('NEVER_PLACEABLE');
    expect(tooMany?.field).to.equal('replicas');
    expect(tooMany?.message).to.match(/6 procs/).and.match(/3 connected agent/);
    expect(refused({ capacityMb: 2048, replicas: 0, distribution: 1 })?.field).to.equal('capacityMb');
    expect(refused({ capacityMb: 2048, replicas: 0, distribution: 1 })?.message).to.match(/2048.*1024 MB/);
    expect(refused({ capacityMb: 500, replicas: 5, distribution: 2 })).to.equal(undefined);
    // An agent away for less than the agent timeout is still in the fleet (the broker drops it
    // only once it is lost): a moment's disconnection never turns a placeable create into a 409.
    expect(admit({ capacityMb: 64, replicas: 2, distribution: 1 }, [...three.slice(0, 2), agent('a3', 1024, 1024, false)])).to.equal(undefined);
    expect(() => admit({ capacityMb: 64, replicas: 2, distribution: 1 }, three.slice(0, 2))).to.throw(NeverPlaceableError);
  });

  it('accepts with a reason what cannot be placed now, or while no agent is connected', () => {
    expect(admit({ capacityMb: 64, replicas: 2, distribution: 1 }, three)).to.equal(undefined);
    expect(admit({ capacityMb: 600, replicas: 0, distribution: 1 }, three.map((a) => agent(a.id, 1024, 500)))).to.match(/waiting for room/);
    expect(admit({ capacityMb: 4096, replicas: 9, distribution: 1 }, [])).to.match(/no agent is connected yet/);
    // Distribution 2 allows 6 procs on 3 agents, but two 900 MB procs never share 1024 MB: larger agents may join.
    expect(admit({ capacityMb: 900, replicas: 5, distribution: 2 }, three)).to.match(/waiting for larger agents: .*could hold 3 even if empty/);
  });
});

describe('CLI wording', () => {
  it('wraps raw etcd and fetch errors in a sentence that says what to check', () => {
    const grpc = new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: ');
    expect(explainError(grpc, { etcd: 'http://127.0.0.1:2379' })).to.match(/^lost or could not reach etcd at http:\/\/127\.0\.0\.1:2379: check that etcd is running/).and.match(/\(connect ECONNREFUSED 127\.0\.0\.1:2379\)$/);
    expect(explainError(new Error('Lease We lost connection to etcd and our lease has expired.'), { etcd: 'http://e:1' })).to.match(/etcd at http:\/\/e:1/);
    const fetchFailed = Object.assign(new TypeError('fetch failed'), { cause: new Error('connect ECONNREFUSED 127.0.0.1:5656') });
    expect(explainError(fetchFailed, { scheduler: 'http://127.0.0.1:5656' })).to.match(/could not reach the scheduler at http:\/\/127\.0\.0\.1:5656: check that it is running/);
    expect(explainError(new Error('NOT_FOUND: instance x does not exist'), {})).to.equal('NOT_FOUND: instance x does not exist');
  });

  it('puts --api in the dev banner example when the API is not at the default address', () => {
    expect(cliExample('main.js', 'http://127.0.0.1:5656')).not.to.contain('--api');
    expect(cliExample('main.js', 'http://127.0.0.1:7777')).to.match(/ --api http:\/\/127\.0\.0\.1:7777$/);
  });
});
