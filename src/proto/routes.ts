/**
 * Where the agent protocol is served on the scheduler's API address (see proto/redfleet.proto):
 * the agent calls these, the scheduler's agent endpoint answers them.
 */

/** `POST`: SUBSCRIBE (whose response is the event stream), UPDATE and HEARTBEAT calls. */
export const AGENT_PATH = '/api/v1/agent';
/** `GET`: a single-use nonce to sign SUBSCRIBE with. */
export const CHALLENGE_PATH = '/api/v1/agent/challenge';
/**
 * `GET ?ref=<instance>/<backupId>` within a session: the RDB of a backup that a master this agent
 * launches is restored from (issue 9 part 6). Only for an agent that holds such a proc.
 */
export const BACKUP_PATH = '/api/v1/agent/backup';
