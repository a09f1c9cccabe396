import { redfleet } from './redfleet.js';

export const pb = redfleet.v1;
export type Resources = { cpus: number; mem: number; ports: PortRange[] };
export type PortRange = { begin: number; end: number };

/** Resources as Mesos spells them: scalar cpus and mem (MB), ranges of ports. */
export function toResourceList(r: Resources): redfleet.v1.IResource[] {
  return [
    { name: 'cpus', type: pb.Value.Type.SCALAR, scalar: { value: r.cpus } },
    { name: 'mem', type: pb.Value.Type.SCALAR, scalar: { value: r.mem } },
    { name: 'ports', type: pb.Value.Type.RANGES, ranges: { range: r.ports.map((p) => ({ begin: p.begin, end: p.end })) } },
  ];
}

export function fromResourceList(list: redfleet.v1.IResource[] | null | undefined): Resources {
  const out: Resources = { cpus: 0, mem: 0, ports: [] };
  for (const r of list ?? []) {
    if (r.name === 'cpus') out.cpus += r.scalar?.value ?? 0;
    else if (r.name === 'mem') out.mem += r.scalar?.value ?? 0;
    else if (r.name === 'ports') {
      for (const range of r.ranges?.range ?? []) out.ports.push({ begin: Number(range.begin), end: Number(range.end) });
    }
  }
  return out;
}

/** The number of ports in a set of ranges. */
export function portCount(ranges: PortRange[]): number {
  return ranges.reduce((n, r) => n + Math.max(0, r.end - r.begin + 1), 0);
}

/** `ranges` minus the single ports in `taken`. */
export function subtractPorts(ranges: PortRange[], taken: number[]): PortRange[] {
  const used = new Set(taken);
  const out: PortRange[] = [];
  for (const r of ranges) {
    let start = -1;
    for (let p = r.begin; p <= r.end; p++) {
      if (used.has(p)) {
        if (start >= 0) out.push({ begin: start, end: p - 1 });
        start = -1;
      } else if (start < 0) {
        start = p;
      }
    }
    if (start >= 0) out.push({ begin: start, end: r.end });
  }
  return out;
}

/** The form parsePortRange accepts, for messages that say what a range must look like. */
export const PORT_RANGE_FORM = 'FIRST-LAST within 1-65535';

/** Parses `FIRST-LAST` into a port range; throws a RangeError for anything else. */
export function parsePortRange(text: string): PortRange {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  const begin = Number(m?.[1]);
  const end = Number(m?.[2]);
  if (!m || begin < 1 || end > 65535 || begin > end) throw new RangeError(`port range '${text}' is not ${PORT_RANGE_FORM}`);
  return { begin, end };
}

export function taskStateName(state: redfleet.v1.TaskState): string {
  return pb.TaskState[state].replace(/^TASK_/, '');
}
