import { UsageError } from '../errors.js';
import { intFlag, parseFlags } from './args.js';
import { apiBase, apiFlag, call, CONNECTION_FLAGS } from './api-client.js';
import { jsonOutput } from './drain-command.js';
import { liveView, table } from './live.js';

/** `redfleet top`: a live table of the agents and the instances, redrawn every second. */

export const TOP_HELP = `Usage: redfleet top [flags]
A live view of the fleet, redrawn until Ctrl-C: each agent (connected, draining, cpus, memory and
ports free of total, procs) and each instance (status, master, replicas running of wanted,
memory used of capacity). Not on a terminal, a new table is printed only when something changed.

  --interval SECONDS   time between redraws; default 1
  --once               print one table and exit (for scripts); default off
  --output json        with --once: print {"agents": [...], "instances": [...]} as the API gives them
${CONNECTION_FLAGS}`;

type Row = Record<string, unknown>;

export async function topCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...apiFlag, interval: { type: 'string' }, once: { type: 'boolean' }, output: { type: 'string' } });
  if (values.help) return void console.log(TOP_HELP);
  if (positionals.length !== 0) throw new UsageError('top takes no arguments');
  const json = jsonOutput(values.output);
  if (json && !values.once) throw new UsageError('--output json needs --once (a live view is for a terminal)');
  const base = apiBase(values.api, values.token);
  const fetchAll = async (): Promise<{ agents: Row[]; instances: Row[] }> => {
    const [agents, instances] = await Promise.all([call(base, 'GET', '/api/agents'), call(base, 'GET', '/api/instances')]);
    return { agents: agents.body as unknown as Row[], instances: Object.values(instances.body) as Row[] };
  };
  if (values.once) {
    const fleet = await fetchAll();
    return void console.log(json ? JSON.stringify(fleet, null, 2) : renderFleet(fleet.agents, fleet.instances));
  }
  const seconds = intFlag(values.interval, 'interval', 1, 0.1);
  await liveView(async () => {
    const fleet = await fetchAll();
    return renderFleet(fleet.agents, fleet.instances);
  }, seconds * 1000);
}

/** The two tables, agents then instances; status in words (never colour alone). */
export function renderFleet(agents: Row[], instances: Row[]): string {
  const agentRows = [['AGENT', 'STATE', 'IP', 'CPUS FREE', 'MEM FREE (MB)', 'PORTS FREE', 'PROCS']];
  for (const a of agents) {
    const total = a.total as { cpus: number; mem: number; ports: { begin: number; end: number }[] };
    const free = a.free as typeof total;
    const state = !a.connected ? 'disconnected' : a.draining ? 'draining' : 'connected';
    agentRows.push([String(a.id), state, String(a.ip), `${free.cpus}/${total.cpus}`, `${free.mem}/${total.mem}`,
      `${portCount(free.ports)}/${portCount(total.ports)}`, String((a.tasks as unknown[]).length)]);
  }
  const instRows = [['INSTANCE', 'STATUS', 'MASTER', 'REPLICAS', 'MEMORY USED', 'OPERATION']];
  for (const i of instances.sort((x, y) => String(x.name).localeCompare(String(y.name)))) {
    const m = i.master as { ip: string; port: number } | null;
    const procs = (i.procs as Row[] | undefined) ?? [];
    const used = procs.map((p) => Number((p.stats as Row | null)?.usedMemory ?? NaN)).filter((n) => !Number.isNaN(n));
    const mem = used.length > 0 ? `${mb(Math.max(...used))}/${i.capacityMb} MB` : `-/${i.capacityMb} MB`;
    const op = i.operation as { kind: string; state: string } | null;
    instRows.push([String(i.name), String(i.status), m ? `${m.ip}:${m.port}` : '-', `${(i.slaves as unknown[]).length}/${i.replicas}`, mem,
      op && op.state === 'running' ? op.kind : '-']);
  }
  const agentsText = agents.length === 0 ? 'no agents' : table(agentRows);
  const instText = instances.length === 0 ? 'no instances' : table(instRows);
  return `${agentsText}\n\n${instText}`;
}

function portCount(spans: { begin: number; end: number }[]): number {
  return spans.reduce((n, s) => n + s.end - s.begin + 1, 0);
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
