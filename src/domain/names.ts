/**
 * Name rules shared by the API (which refuses a create with a bad name) and the agent (which
 * refuses a LAUNCH naming one): both sides must agree, and the executor may not import the API.
 */

/** An instance name: a DNS label, 1-63 lowercase letters, digits or "-", no "-" at either end. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** An agent id, as `redfleet agent --id` takes it: letters, digits, "_", "." or "-". */
export const AGENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A random (version 4) UUID in its canonical lowercase form, as the scheduler's proc ids carry. */
export const UUID_V4_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Whether `procId` is `<instance>::<uuid v4>` of exactly this instance. */
export function isProcIdOf(instance: string, procId: string): boolean {
  const prefix = `${instance}::`;
  return procId.startsWith(prefix) && UUID_V4_PATTERN.test(procId.slice(prefix.length));
}
