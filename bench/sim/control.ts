/**
 * bench/sim/control: the simulator's control port, an HTTP server on loopback only, through which a
 * benchmark or a person injects failures and looks at the simulated fleet:
 *
 *   GET  /status                        {"agents","subscribed","procs","masters","frozen"}
 *   GET  /procs                         every live proc: agent, proc, instance, address, role, frozen
 *   POST /kill-proc?proc=ID             the proc's process dies (its agent reports TASK_FAILED)
 *   POST /freeze?proc=ID                the proc stops answering (SIGSTOP): the scheduler must find out
 *   POST /lose-agent?agent=ID[&agent=]  the agents' nodes are gone: streams, responders, watches
 *   POST /stop                          stops every agent cleanly, then the simulator exits
 *
 * Answers are JSON; an unknown proc or agent is 404.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { SimFleet } from './sim-fleet.js';

export function startControl(fleet: SimFleet, port: number, onStop: () => void): Promise<Server> {
  const server = createServer((req, res) => {
    void route(fleet, req, res, onStop).catch((err: Error) => send(res, 500, { error: err.message }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function route(fleet: SimFleet, req: IncomingMessage, res: ServerResponse, onStop: () => void): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control');
  const key = `${req.method} ${url.pathname}`;
  if (key === 'GET /status') return send(res, 200, fleet.summary());
  if (key === 'GET /procs') return send(res, 200, fleet.procs());
  if (key === 'POST /kill-proc' || key === 'POST /freeze') {
    const proc = url.searchParams.get('proc') ?? '';
    const done = key === 'POST /kill-proc' ? fleet.killProc(proc) : fleet.freezeProc(proc);
    return send(res, done ? 200 : 404, done ? { proc } : { error: `no live proc ${proc}` });
  }
  if (key === 'POST /lose-agent') {
    const ids = url.searchParams.getAll('agent');
    const lost = ids.map((id) => fleet.loseAgent(id));
    const missing = ids.filter((_, i) => !lost[i]);
    return send(res, missing.length === 0 ? 200 : 404, { lost: ids.filter((_, i) => lost[i]), missing });
  }
  if (key === 'POST /stop') {
    send(res, 200, { stopping: true });
    onStop();
    return;
  }
  send(res, 404, { error: `no route ${key}` });
}
