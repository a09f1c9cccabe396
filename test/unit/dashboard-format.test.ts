import { expect } from 'chai';

/**
 * The dashboard's pure formatting (src/api/ui/format.js, plain browser JavaScript copied into
 * dist by the build): durations, bytes, and a replica's lag from the INFO figures.
 */
interface Format {
  formatBytes(n: number): string;
  formatDuration(s: number): string;
  portCount(spans: Array<{ begin: number; end: number }>): number;
  replication(master: unknown, replica: unknown): { link: string; lagBytes: number | null; ioSeconds: number | null };
  describeReplication(r: { link: string; lagBytes: number | null; ioSeconds: number | null }): string;
  memoryUse(usedBytes: number | undefined, capacityMb: number): { text: string; share: number };
  instanceTone(status: string): string;
}

// A path tsc does not follow: the module is JavaScript without types.
const modulePath = '../../src/api/ui/format.js';

describe('dashboard formatting (src/api/ui/format.js)', () => {
  let f: Format;
  before(async () => {
    f = (await import(modulePath)) as Format;
  });

  it('writes durations and sizes for people', () => {
    expect([45, 720, 754, 12_000, 187_200].map((s) => f.formatDuration(s))).to.deep.equal(['45 s', '12 min', '12 min 34 s', '3 h 20 min', '2 d 4 h']);
    expect([0, 1536, 32 * 1024 * 1024, 1024 ** 3].map((b) => f.formatBytes(b))).to.deep.equal(['0 B', '1.5 KiB', '32 MiB', '1.0 GiB']);
    expect(f.portCount([{ begin: 30000, end: 30019 }, { begin: 31000, end: 31000 }])).to.equal(21);
    expect(f.memoryUse(8 * 1024 * 1024, 32)).to.deep.equal({ text: '8.0 MiB of 32 MiB (25%)', share: 0.25 });
    expect(f.memoryUse(undefined, 32).text).to.equal('– of 32 MiB');
  });

  it('measures a replica\'s lag as the master\'s offset minus its own, never below 0, with the seconds since it heard the master', () => {
    const master = { stats: { replOffset: 5000 } };
    const behind = f.replication(master, { stats: { replOffset: 4200, masterLinkStatus: 'up', lastIoSecondsAgo: 1 } });
    expect(behind).to.deep.equal({ link: 'up', lagBytes: 800, ioSeconds: 1 });
    expect(f.describeReplication(behind)).to.equal('800 B behind, heard 1 s ago');
    // Read a second apart, the replica's figure can be the newer one.
    expect(f.replication(master, { stats: { replOffset: 5100, masterLinkStatus: 'up' } }).lagBytes).to.equal(0);
    expect(f.replication(master, { stats: null })).to.deep.equal({ link: 'unknown', lagBytes: null, ioSeconds: null });
    expect(f.replication(null, { stats: { replOffset: 1, masterLinkStatus: 'down' } })).to.deep.equal({ link: 'down', lagBytes: null, ioSeconds: null });
  });

  it('gives every instance status a tone, and an unknown one the alarming tone', () => {
    expect(['RUNNING', 'CREATING', 'DEGRADED', 'DELETED', 'SOMETHING'].map((s) => f.instanceTone(s))).to.deep.equal(['ok', 'info', 'warn', 'neutral', 'bad']);
  });
});
