import type { redfleet } from '../proto/redfleet.js';
import type { MsgWatch } from '../store/agent-store.js';
import type { RedisProcess } from './redis-process.js';

/** A proc this agent launched, from its LAUNCH until its redis-server exits. */
export interface RunningProc {
  task: redfleet.v1.ITaskInfo;
  launch: redfleet.v1.RedisLaunch;
  redis: RedisProcess;
  watcher?: MsgWatch;
  running: boolean;
  /** The master this proc should replicate from; null once told MASTER. Messages change it. */
  target: { ip: string; port: number } | null;
  /** Why its launch failed, when the agent stopped it for that reason. */
  failure?: string;
}
