/**
 * Every error a user can see carries a stable code, the HTTP status it maps to, and a
 * message that says what to do next. `field` names the offending input, when there is one.
 */
export class RedFleetError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RedFleetError';
  }
}

/** Thrown by input validation at the API edge: a bad or missing field. */
export class InvalidInputError extends RedFleetError {
  constructor(code: string, field: string, message: string) {
    super(code, message, 400, field);
  }
}

/**
 * Thrown by the `redfleet` command (src/cli) for a bad flag or argument, or a command it does not
 * know. The message names the flag and what it takes; the command prints it on one line and exits
 * 2, as for every usage error (retrying cannot help).
 */
export class UsageError extends RedFleetError {
  constructor(message: string) {
    super('BAD_USAGE', message, 400);
  }
}

/** Thrown when a named instance does not exist (or was never created). */
export class NotFoundError extends RedFleetError {
  constructor(what: string, name: string) {
    super('NOT_FOUND', `${what} '${name}' does not exist`, 404);
  }
}

/** Thrown when a create names an instance that is still alive. */
export class ConflictError extends RedFleetError {
  constructor(message: string) {
    super('ALREADY_EXISTS', message, 409);
  }
}

/** Thrown when an agent-protocol frame or message cannot be decoded; the connection is dropped. */
export class ProtocolError extends RedFleetError {
  constructor(message: string) {
    super('BAD_FRAME', message, 400);
  }
}

/** Thrown by the API's access check (401): no credentials, or ones that match nothing. */
export class UnauthenticatedError extends RedFleetError {
  constructor(message: string) {
    super('UNAUTHENTICATED', message, 401);
  }
}

/** Thrown by the API's access check (403): valid credentials that do not reach this resource. */
export class ForbiddenError extends RedFleetError {
  constructor(message: string) {
    super('FORBIDDEN', message, 403);
  }
}

/** Thrown by anonymous creates (429): the caller's quota of live instances is used up. */
export class QuotaError extends RedFleetError {
  constructor(message: string) {
    super('QUOTA_EXCEEDED', message, 429);
  }
}

/**
 * Thrown by a create (409) that the connected agents could never hold, even empty: more procs than
 * agents x distribution, or a capacity above every agent's memory. `field` names what to change.
 */
export class NeverPlaceableError extends RedFleetError {
  constructor(field: string, message: string) {
    super('NEVER_PLACEABLE', message, 409, field);
  }
}

/** Thrown by readBody (src/net.ts) when a request body is not complete within its time limit (408). */
export class BodyTimeoutError extends RedFleetError {
  constructor(readonly timeoutMs: number) {
    super('BODY_TIMEOUT', `request body not received within ${timeoutMs} ms`, 408);
  }
}

/** Thrown by readBody (src/net.ts) when a request body is over its limit (413); nothing past the limit is buffered. */
export class BodyTooLargeError extends RedFleetError {
  constructor(readonly limit: number) {
    super('BODY_TOO_LARGE', `request body is over the ${limit}-byte limit`, 413);
  }
}

/**
 * Thrown by the agent when a LAUNCH from the scheduler carries a field it must not use (a
 * password hash that is not 64 hex characters, a port outside the agent's range, a bad name...).
 * The agent answers TASK_FAILED with this message and writes, creates and spawns nothing.
 */
export class InvalidLaunchError extends RedFleetError {
  constructor(field: string, message: string) {
    super('INVALID_LAUNCH', message, 400, field);
  }
}

/**
 * Thrown by the agent endpoint (409) when a SUBSCRIBE names an agent whose current stream still
 * answers heartbeats: a second subscriber must not take a live agent's procs away.
 */
export class AgentConnectedError extends RedFleetError {
  constructor(agentId: string) {
    super('AGENT_CONNECTED', `agent '${agentId}' is connected and answers heartbeats; stop it before subscribing under its id`, 409);
  }
}

/**
 * Thrown by the offer broker (403) when an authenticated agent reports on a proc that the store
 * places on another agent (its SID): an agent speaks only for its own procs.
 */
export class NotYourProcError extends RedFleetError {
  constructor(agentId: string, procId: string) {
    super('NOT_YOUR_PROC', `agent '${agentId}' may not report on proc '${procId}': it belongs to another agent`, 403);
  }
}

/**
 * Thrown at scheduler start, before it campaigns, when its fleet key cannot be this fleet's:
 * FLEET_KEY_MISMATCH when etcd's fingerprint matches neither the given key nor the previous
 * one; FLEET_KEY_MISSING when the key file is absent but etcd already holds a fingerprint (a
 * new key would only lock this scheduler out). The CLI exits 2 on it.
 */
export class FleetKeyError extends RedFleetError {
  constructor(code: 'FLEET_KEY_MISMATCH' | 'FLEET_KEY_MISSING', message: string) {
    super(code, message, 409);
  }
}

/**
 * Thrown (503) by a standby scheduler for every write and agent call: only the leader acts.
 * `leader` is the leader's API URL when one is elected, so the caller can go there.
 */
export class NotLeaderError extends RedFleetError {
  constructor(readonly leader: string | undefined) {
    super(
      'NOT_LEADER',
      leader
        ? `this scheduler is a standby and serves reads only; send writes to the leader: the leader is at ${leader}`
        : 'this scheduler is a standby and serves reads only; no leader is elected right now, retry in a few seconds',
      503,
    );
  }
}

/**
 * Thrown by POST /api/instances/:name/restart-empty (409) when the instance is not waiting for a
 * lost master's agent, so there is nothing to give up.
 */
export class NotWaitingError extends RedFleetError {
  constructor(name: string) {
    super('NOT_WAITING', `instance '${name}' is not waiting for a lost master; there is nothing to restart empty`, 409);
  }
}

/** Thrown when an instance already runs a day-2 operation (one at a time per instance). */
export class OperationInProgressError extends RedFleetError {
  constructor(name: string, kind: string, step: string) {
    super('OPERATION_IN_PROGRESS', `instance '${name}' is already running a ${kind} (${step}); wait for it to end`, 409);
  }
}

/** Thrown when an operation cannot start: the instance's state does not allow it now (409). */
export class OperationRefusedError extends RedFleetError {
  constructor(message: string, field?: string) {
    super('OPERATION_REFUSED', message, 409, field);
  }
}

/**
 * Thrown by a planned switchover when no replica qualifies (none running with its link up, or
 * the one named is not such a replica, or every one sits on an agent to avoid): 409, and
 * `-NOGOODSLAVE` on the Sentinel endpoint.
 */
export class NoEligibleReplicaError extends OperationRefusedError {
  constructor(message: string, field?: string) {
    super(message, field);
  }
}
