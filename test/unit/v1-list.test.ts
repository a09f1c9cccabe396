import { expect } from 'chai';
import { instanceFromFields, frozenWhenTesting } from '../../src/store/records.js';
import { V1StatusList } from '../../src/api/v1-list.js';
import { withProcStats } from '../../src/store/stats-overlay.js';
import { v1Status } from '../../src/api/views.js';
import { namedMaster } from '../../src/domain/rules.js';
import type { Instance } from '../../src/domain/model.js';
import type { MasterRule } from '../../src/domain/services.js';

/**
 * GET /v1/STATUS/ answers from V1StatusList: one JSON text per instance, rendered again only
 * when the store hands out a rebuilt instance or the announced master changes.
 */
function instance(name: string, status = 'RUNNING', usedMemory = 1000): Instance {
  const stats = JSON.stringify({ uptime: 5, usedMemory, clients: 2, role: 'master', replOffset: 1, updatedAt: '2026-11-30T06:00:00.000Z' });
  const proc = (fields: Record<string, string>) => new Map(Object.entries({ Instance: name, IP: '127.1.0.1', Capacity: '16', State: 'RUNNING', Msg: '', Stats: stats, ...fields }));
  const procs = new Map([
    [`${name}::m`, proc({ Type: 'M', SID: 'a1', Port: '7000' })],
    [`${name}::r1`, proc({ Type: 'S', SID: 'a2', Port: '7001', SlaveOf: '127.1.0.1:7000' })],
    [`${name}::r2`, proc({ Type: 'S', SID: 'a3', Port: '7002', SlaveOf: '127.1.0.1:7000' })],
  ]);
  const fields = new Map(Object.entries({ Type: 'MS', Status: status, Capacity: '16', ExpMasters: '1', ExpSlaves: '2', Masters: '1', Slaves: '2', Mname: `${name}::m`, DValue: '1' }));
  return frozenWhenTesting(instanceFromFields(name, fields, procs, new Set([`${name}::r1`, `${name}::r2`])));
}

const announce: MasterRule = (inst) => namedMaster(inst);
const announceNone: MasterRule = () => undefined;

describe('the v1 STATUS list (V1StatusList)', () => {
  it('is the JSON of every instance\'s v1 STATUS, in order', async () => {
    const all = [instance('a'), instance('b', 'DEGRADED'), instance('c')];
    const text = await new V1StatusList().render(all, announce);
    expect(JSON.parse(text)).to.deep.equal(all.map((i) => v1Status(i, announce)));
    expect(text).to.equal(JSON.stringify(all.map((i) => v1Status(i, announce))));
    expect(await new V1StatusList().render([], announce)).to.equal('[]');
  });

  it('renders the same text in slices, the loop let go between them', async () => {
    const all = Array.from({ length: 200 }, (_, i) => instance(`s${String(i).padStart(3, '0')}`));
    let letGo = false;
    setImmediate(() => { letGo = true; });
    const sliced = await new V1StatusList().render(all, announce, 0);
    expect(letGo, 'slices of 0 ms: the loop is let go').to.equal(true);
    let letGoWhole = false;
    setImmediate(() => { letGoWhole = true; });
    const whole = await new V1StatusList().render(all, announce, 1e9);
    expect(letGoWhole, 'one slice: rendered in one piece').to.equal(false);
    expect(sliced).to.equal(whole);
    expect(JSON.parse(sliced)).to.have.length(200);
    expect(await new V1StatusList().render([], announce, 0)).to.equal('[]');
  });

  it('renders an instance again once the store hands out a rebuilt one, and only that one', async () => {
    const list = new V1StatusList();
    const a = instance('a');
    const b = instance('b', 'RUNNING', 1000);
    await list.render([a, b], announce);
    const rebuilt = instance('b', 'RUNNING', 2000);
    const after = JSON.parse(await list.render([a, rebuilt], announce));
    expect(after[1].Master.MemoryUsed).to.equal(2000);
    expect(after[0]).to.deep.equal(v1Status(a, announce));
  });

  it('after a report replaces one proc in a copy of the instance, shows its figures, the text still exactly JSON.stringify', async () => {
    const list = new V1StatusList();
    const a = instance('a');
    await list.render([a], announce);
    const replica = a.procs.find((p) => p.id === 'a::r1')!;
    const copy = withProcStats(a, replica.id, { ...replica.stats!, usedMemory: 4242, updatedAt: '2026-11-30T07:00:00.000Z' });
    const text = await list.render([copy], announce);
    expect(text).to.equal(JSON.stringify([v1Status(copy, announce)]));
    expect(JSON.parse(text)[0].Slaves.map((s: { MemoryUsed: number }) => s.MemoryUsed)).to.include(4242);
  });

  it('keeps the text of an instance the store still shares (the same object)', async () => {
    const list = new V1StatusList();
    const shared = { ...instance('a') } as Instance;
    const first = await list.render([shared], announce);
    // Readers must never change a shared instance (REDFLEET_FROZEN_CACHE makes that throw);
    // changing this unfrozen copy shows the text was not rendered again.
    (shared as { status: string }).status = 'DELETING';
    expect(await list.render([shared], announce)).to.equal(first);
  });

  it('renders an instance again when the master announced for it changes', async () => {
    const list = new V1StatusList();
    const a = instance('a');
    const none = JSON.parse(await list.render([a], announceNone));
    expect(none[0].Master).to.equal(null);
    expect(none[0].Slaves).to.have.length(2);
    const some = JSON.parse(await list.render([a], announce));
    expect(some[0].Master).to.include({ IP: '127.1.0.1', Port: '7000' });
    expect(some[0].Slaves.map((s: { Port: string }) => s.Port)).to.deep.equal(['7001', '7002']);
  });
});
