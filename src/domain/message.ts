/**
 * The Msg protocol: what the scheduler writes into a proc's `Msg` key in etcd and its agent
 * carries out, then resets to "". Written and parsed here only. Pure.
 *
 * - `SHUTDOWN`: stop the redis-server (a fenced old master, a deleted instance).
 * - `MASTER`: become the master (REPLICAOF NO ONE, with the tenant's clients dropped).
 * - `SLAVEOF <ip> <port>`: follow that master.
 */
export type ProcMessage =
  | { verb: 'SHUTDOWN' }
  | { verb: 'MASTER' }
  | { verb: 'SLAVEOF'; ip: string; port: number };

export const SHUTDOWN_MESSAGE = 'SHUTDOWN';
export const MASTER_MESSAGE = 'MASTER';

/** The Msg text of a message. */
export function encodeMessage(m: ProcMessage): string {
  return m.verb === 'SLAVEOF' ? `SLAVEOF ${m.ip} ${m.port}` : m.verb;
}

/** The Msg that points a proc at `master`. */
export function slaveOfMessage(master: { ip: string; port: number }): string {
  return encodeMessage({ verb: 'SLAVEOF', ip: master.ip, port: master.port });
}

/** Whether the proc has been told to shut down (and so no longer counts in its instance). */
export function isShuttingDown(proc: { msg: string }): boolean {
  return proc.msg === SHUTDOWN_MESSAGE;
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
  throw new Error(`unknown message '${text}'; expected SHUTDOWN, MASTER or SLAVEOF <ip> <port>`);
}
