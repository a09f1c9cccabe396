import { expect } from 'chai';
import { namesPage } from '../../src/store/instance-page.js';
import { setOrDelete, shared } from '../../src/store/tree-node.js';

/**
 * The cache's pieces that a 100,000-proc tree leans on: the page of names from the sorted index
 * (GET /api/instances?limit=&after=&status=) and the shared copies of short strings.
 */
describe('the fleet cache\'s name pages (namesPage)', () => {
  const names = ['a', 'b', 'c', 'd', 'e'];
  const status: Record<string, string> = { a: 'RUNNING', b: 'DEGRADED', c: 'RUNNING', d: 'RUNNING', e: 'DELETED' };
  const statusOf = (n: string) => status[n];

  it('pages by name after the given one, with the next page\'s start while more may follow', () => {
    expect(namesPage(names, { limit: 2 }, statusOf)).to.deep.equal({ names: ['a', 'b'], next: 'b' });
    expect(namesPage(names, { limit: 2, after: 'b' }, statusOf)).to.deep.equal({ names: ['c', 'd'], next: 'd' });
    expect(namesPage(names, { limit: 2, after: 'd' }, statusOf)).to.deep.equal({ names: ['e'] });
    expect(namesPage(names, {}, statusOf)).to.deep.equal({ names });
  });

  it('starts after a name that is not in the index, where it would sort', () => {
    expect(namesPage(names, { limit: 1, after: 'bb' }, statusOf)).to.deep.equal({ names: ['c'], next: 'c' });
    expect(namesPage(names, { after: 'z' }, statusOf)).to.deep.equal({ names: [] });
  });

  it('filters by status and keeps paging past instances that do not match', () => {
    expect(namesPage(names, { limit: 2, status: 'RUNNING' }, statusOf)).to.deep.equal({ names: ['a', 'c'], next: 'c' });
    expect(namesPage(names, { limit: 2, status: 'RUNNING', after: 'c' }, statusOf)).to.deep.equal({ names: ['d'] });
    expect(namesPage(names, { status: 'CREATING' }, statusOf)).to.deep.equal({ names: [] });
  });
});

describe('the fleet cache\'s shared strings (shared)', () => {
  it('hands out one copy of a short string, equal to what was read', () => {
    const first = shared(['RUN', 'NING'].join(''));
    expect(shared(`RUN${'NING'}`)).to.equal(first).and.to.equal('RUNNING');
  });

  it('keeps long strings (Stats, ids) as they are', () => {
    const stats = JSON.stringify({ uptime: 1, usedMemory: 2, updatedAt: '2026-11-30T07:00:00.000Z' });
    expect(shared(stats)).to.equal(stats);
  });

  it('sets and deletes tree keys', () => {
    const m = new Map<string, string>();
    setOrDelete(m, 'State', 'RUNNING');
    expect(m.get('State')).to.equal('RUNNING');
    setOrDelete(m, 'State', undefined);
    expect(m.has('State')).to.equal(false);
  });
});
