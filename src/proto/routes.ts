/**
 * Where the agent protocol is served on the scheduler's API address (see proto/redfleet.proto):
 * the agent calls these, the scheduler's agent endpoint answers them.
 */

/** `POST`: SUBSCRIBE (whose response is the event stream), UPDATE and HEARTBEAT calls. */
export const AGENT_PATH = '/api/v1/agent';
/** `GET`: a single-use nonce to sign SUBSCRIBE with. */
export const CHALLENGE_PATH = '/api/v1/agent/challenge';
