/**
 * The Msg protocol: what the scheduler writes into a proc's `Msg` key in etcd and its agent
 * carries out, then resets to "". Written and parsed here only. Pure.
 *
 * - `SHUTDOWN`: stop the redis-server (a fenced old master, a deleted instance).
 * - `MASTER`: become the master (REPLICAOF NO ONE, with the tenant's clients dropped).
 * - `SLAVEOF <ip> <port>`: follow that master.
 * - `CAPACITY <mb>`: take this capacity in place (maxmemory, client limits, memory ceiling, the
 *   task's memory); the agent writes the proc's Capacity with the reset, so the new value in etcd
 *   says the proc has it (a resize waits for that).
 */
export type ProcMessage =
  | { verb: 'SHUTDOWN' }
  | { verb: 'MASTER' }
  | { verb: 'SLAVEOF'; ip: string; port: number }
  | { verb: 'CAPACITY'; capacityMb: number };

export const SHUTDOWN_MESSAGE = 'SHUTDOWN';
export const MASTER_MESSAGE = 'MASTER';

/** The Msg text of a message. */
export function encodeMessage(m: ProcMessage): string {
  if (m.verb === 'SLAVEOF') return `SLAVEOF ${m.ip} ${m.port}`;
  if (m.verb === 'CAPACITY') return `CAPACITY ${m.capacityMb}`;
  return m.verb;
}

/** The Msg that gives a proc a new capacity (MB). */
export function capacityMessage(capacityMb: number): string {
  return encodeMessage({ verb: 'CAPACITY', capacityMb });
}

/** The Msg that points a proc at `master`. */
export function slaveOfMessage(master: { ip: string; port: number }): string {
  return encodeMessage({ verb: 'SLAVEOF', ip: master.ip, port: master.port });
}

/**
 * The proc key the scheduler writes with every SHUTDOWN (when it was ordered). The agent resets
 * Msg to "" as soon as it acts, while the proc's end reaches etcd only later, through its status
 * update; this key keeps the order on record in between.
 */
export const SHUTDOWN_AT_FIELD = 'ShutdownAt';

/** The proc fields that order a SHUTDOWN: the message and its lasting mark. */
export function shutdownFields(now = new Date()): Record<string, string> {
  return { Msg: SHUTDOWN_MESSAGE, [SHUTDOWN_AT_FIELD]: now.toISOString() };
}

/**
 * Whether the proc has been told to shut down (and so no longer counts in its instance), also
 * after its agent reset the Msg: a fenced old master counted again as a replica until its KILLED
 * arrived, so its instance read RUNNING and got no replacement replica (see need.ts).
 */
export function isShuttingDown(proc: { msg: string; shutdownAt?: string }): boolean {
  return proc.msg === SHUTDOWN_MESSAGE || Boolean(proc.shutdownAt);
}

/** Reads a Msg value; throws with a sentence naming what was expected. "" is no message (undefined). */
export function parseMessage(text: string): ProcMessage | undefined {
  const [verb, ...args] = text.trim().split(/\s+/);
  if (!verb) return undefined;
  if (verb === 'SHUTDOWN' || verb === 'MASTER') {
    if (args.length > 0) throw new Error(`${verb} takes no arguments, got '${text}'`);
    return { verb };
  }
  if (verb === 'SLAVEOF') {
    const [ip, port] = args;
    if (!ip || !/^[0-9]{1,5}$/.test(port ?? '') || args.length !== 2 || Number(port) > 65535) {
      throw new Error(`SLAVEOF needs '<ip> <port>', got '${text}'`);
    }
    return { verb, ip, port: Number(port) };
  }
  if (verb === 'CAPACITY') {
    if (args.length !== 1 || !/^[1-9][0-9]{0,7}$/.test(args[0])) throw new Error(`CAPACITY needs '<mb>', a whole number of MB, got '${text}'`);
    return { verb, capacityMb: Number(args[0]) };
  }
  throw new Error(`unknown message '${text}'; expected SHUTDOWN, MASTER, SLAVEOF <ip> <port> or CAPACITY <mb>`);
}
