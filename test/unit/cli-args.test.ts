import { expect } from 'chai';
import { portRangeFlag } from '../../src/cli/args.js';
import { UsageError } from '../../src/errors.js';
import { parsePortRange } from '../../src/proto/messages.js';

describe('CLI flags (src/cli/args.ts)', () => {
  it('names the flag when a port range is bad; the protocol parser does not', () => {
    expect(portRangeFlag('7000-7099', 'ports')).to.deep.equal({ begin: 7000, end: 7099 });
    expect(() => portRangeFlag('7099-7000', 'ports')).to.throw(UsageError, "--ports must be FIRST-LAST within 1-65535, got '7099-7000'");
    expect(() => parsePortRange('7099-7000')).to.throw(RangeError, "port range '7099-7000' is not FIRST-LAST within 1-65535");
    expect(() => parsePortRange('0-10')).to.throw(RangeError).that.satisfies((e: Error) => !e.message.includes('--'));
  });

  it('gives usage errors a stable code', () => {
    expect(new UsageError('x').code).to.equal('BAD_USAGE');
  });
});
