import { TimeSlices } from '../slices.js';
import type { Instance, Proc } from '../domain/model.js';
import type { MasterRule } from '../domain/services.js';
import { runningReplicas } from '../domain/rules.js';
import { v1Proc } from './views.js';

/** One instance's entry: the master it was rendered for, and its JSON text. */
interface Entry {
  master: string;
  json: string;
}

/**
 * The whole `GET /v1/STATUS/` list (MrRedis clients want every instance in one answer), kept as
 * one JSON text per instance. The store shares each Instance object until one of its keys or
 * stats changes, and an entry depends only on that object and on the master announced for it, so
 * an entry is rendered again only when its instance was rebuilt or its announced master changed:
 * a request costs a lookup per instance and one join, not a view and a JSON.stringify of the
 * whole fleet (tens of MB at 100,000 procs). Agents report each proc's figures every few seconds,
 * and a report replaces only that proc in a copy of its instance (store/stats-overlay.ts): so each
 * proc's text is kept too, and an instance rendered again renders only its changed proc; the
 * text is exactly JSON.stringify of its v1 STATUS (views.ts), in the same key order.
 */
export class V1StatusList {
  private readonly entries = new WeakMap<Instance, Entry>();
  private readonly procs = new WeakMap<Proc, string>();

  /**
   * The list as JSON text, in the order given, rendered in slices of at most `sliceMs` with the
   * event loop let go between them: at 3,334 instances a render after many reports took 40-60 ms
   * in one piece, and every other request and agent call waited behind it (see TimeSlices for why
   * by time: slices of 500 instances made a busy leader's first list of 33,334 take 3.3-4.3 s).
   * Each entry is the instance as the caller read it.
   */
  async render(instances: readonly Instance[], rule: MasterRule, sliceMs = 20): Promise<string> {
    const parts = new Array<string>(instances.length);
    const slices = new TimeSlices(sliceMs);
    for (let i = 0; i < instances.length; i++) {
      if (slices.due()) await slices.next();
      parts[i] = this.entry(instances[i], rule);
    }
    return `[${parts.join(',')}]`;
  }

  private entry(inst: Instance, rule: MasterRule): string {
    const master = rule(inst);
    const id = master?.id ?? '';
    const known = this.entries.get(inst);
    if (known && known.master === id) return known.json;
    const head = `{"Name":${JSON.stringify(inst.name)},"Type":${JSON.stringify(inst.type)},"Status":${JSON.stringify(inst.status)},"Capacity":${JSON.stringify(inst.capacity)}`;
    const slaves = runningReplicas(inst, master).map((p) => this.proc(p));
    const json = `${head},"Master":${master ? this.proc(master) : 'null'},"Slaves":[${slaves.join(',')}]}`;
    this.entries.set(inst, { master: id, json });
    return json;
  }

  private proc(p: Proc): string {
    let json = this.procs.get(p);
    if (json === undefined) {
      json = JSON.stringify(v1Proc(p));
      this.procs.set(p, json);
    }
    return json;
  }
}
