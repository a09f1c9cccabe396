import { expect } from 'chai';
import type { Etcd3 } from 'etcd3';
import { boundsFromCounts, TreeHint } from '../../src/store/tree-hint.js';

describe('tree window hint: kept up to date from the cache (issue 11)', () => {
  it('cuts at the instance where each windowKeys-th key falls, in etcd\'s key order', () => {
    const counts: [string, number][] = [['d', 67], ['b', 67], ['a', 67], ['c', 67], ['e', 67], ['f', 67]];
    expect(boundsFromCounts('/R/Instances/', counts, 100)).to.deep.equal(['/R/Instances/c/', '/R/Instances/d/', '/R/Instances/f/']);
    expect(boundsFromCounts('/R/Instances/', counts, 1000), 'a tree under one window: no bounds').to.deep.equal([]);
    // "a-b/..." sorts before "a/..." in etcd ('-' is below '/'), though "a" sorts before "a-b" as a name.
    expect(boundsFromCounts('/R/Instances/', [['a', 10], ['a-b', 10], ['b', 10]], 10)).to.deep.equal(['/R/Instances/a/', '/R/Instances/b/']);
  });

  it('writes the hint only when there is one and it changed', () => {
    const puts: string[] = [];
    const etcd = { put: (key: string) => ({ value: (text: string) => ({ exec: async () => { puts.push(`${key} ${text}`); } }) }) } as unknown as Etcd3;
    const hint = new TreeHint(etcd, '/R/Config/TreeWindows', () => []);
    hint.seen(JSON.stringify({ bounds: ['/R/Instances/c/'] }));
    hint.keep([]);
    hint.keep(['/R/Instances/c/']);
    expect(puts, 'nothing to say, or what is stored already').to.deep.equal([]);
    hint.keep(['/R/Instances/d/']);
    hint.keep(['/R/Instances/d/']);
    expect(puts).to.deep.equal(['/R/Config/TreeWindows {"bounds":["/R/Instances/d/"]}']);
  });

  it('notes the cache\'s windows when it stops, for the next start (a scheduler stopped before its first refresh)', async () => {
    const puts: string[] = [];
    const etcd = { put: (key: string) => ({ value: (text: string) => ({ exec: async () => { puts.push(`${key} ${text}`); } }) }) } as unknown as Etcd3;
    const hint = new TreeHint(etcd, '/R/Config/TreeWindows', () => ['/R/Instances/m/']);
    hint.seen(null);
    hint.start();
    await hint.stop();
    expect(puts).to.deep.equal(['/R/Config/TreeWindows {"bounds":["/R/Instances/m/"]}']);
    await hint.stop();
    expect(puts, 'stopped once').to.have.length(1);
  });
});
