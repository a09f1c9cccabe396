import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SchedulerRole } from '../domain/services.js';
import type { Logger } from '../logger.js';
import { NotLeaderError } from '../errors.js';
import { AgentEndpoint } from './agent-endpoint.js';

/** The agents' protobuf calls, as a raw handler the public HTTP server mounts ahead of its routes. */
export interface AgentCalls {
  owns(req: IncomingMessage): boolean;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/**
 * Agent calls go to the current term's endpoint. A standby takes none: a scheduler that is just
 * taking up leadership holds the call a moment (see SchedulerRole.untilLeading), any other
 * standby refuses it and names the leader.
 */
export function agentCalls(endpoint: () => AgentEndpoint | undefined, role: SchedulerRole, log: Logger): AgentCalls {
  return {
    owns: (req) => AgentEndpoint.owns(req),
    handle: async (req, res) => {
      try {
        if (!role.isLeader() && !(await role.untilLeading?.())) return refuseAgentCall(res, role.leaderUrl());
        const current = endpoint();
        if (!current) throw new Error('this scheduler\'s term has ended');
        await current.handle(req, res);
      } catch (err) {
        log.error('agent call failed', { error: (err as Error).message });
        if (!res.headersSent) res.writeHead(500).end();
      }
    },
  };
}

/** A standby takes no agent calls: the agent looks the leader up in etcd and goes there. */
function refuseAgentCall(res: ServerResponse, leader: string | undefined): void {
  const refusal = new NotLeaderError(leader);
  res.writeHead(refusal.status, { 'Content-Type': 'application/json', ...(leader ? { Location: leader, 'X-RedFleet-Leader': leader } : {}) });
  res.end(JSON.stringify({ error: { code: refusal.code, message: refusal.message, leader: leader ?? null } }));
}
