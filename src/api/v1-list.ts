import type { Instance } from '../domain/model.js';
import type { MasterRule } from '../domain/services.js';
import { v1StatusWith } from './views.js';

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
 * whole fleet (tens of MB at 100,000 procs).
 */
export class V1StatusList {
  private readonly entries = new WeakMap<Instance, Entry>();

  /** The list as JSON text, in the order given. */
  render(instances: readonly Instance[], rule: MasterRule): string {
    const parts = new Array<string>(instances.length);
    for (let i = 0; i < instances.length; i++) parts[i] = this.entry(instances[i], rule);
    return `[${parts.join(',')}]`;
  }

  private entry(inst: Instance, rule: MasterRule): string {
    const master = rule(inst);
    const id = master?.id ?? '';
    const known = this.entries.get(inst);
    if (known && known.master === id) return known.json;
    const json = JSON.stringify(v1StatusWith(inst, master));
    this.entries.set(inst, { master: id, json });
    return json;
  }
}
