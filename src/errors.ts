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
 * Thrown by POST /api/instances/:name/restart-empty (409) when the instance is not waiting for a
 * lost master's agent, so there is nothing to give up.
 */
export class NotWaitingError extends RedFleetError {
  constructor(name: string) {
    super('NOT_WAITING', `instance '${name}' is not waiting for a lost master; there is nothing to restart empty`, 409);
  }
}
