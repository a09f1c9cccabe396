import { bulk, error, int, push, type RespValue } from './resp.js';
import { Glob, MAX_PATTERN_BYTES } from './glob.js';
import { writeReplies, type Client, type RefusalLog } from './connection.js';

/** Commands a RESP2 client may still send while it is subscribed. */
export const WHILE_SUBSCRIBED = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'UNSUBSCRIBE', 'PUNSUBSCRIBE', 'PING', 'QUIT', 'RESET']);

/** Channels plus patterns a client is subscribed to. */
export function subscriptions(client: Client): number {
  return client.channels.size + client.patterns.size;
}

/** SUBSCRIBE / PSUBSCRIBE, within `max` channels and, separately, `max` patterns per client. */
export function subscribe(client: Client, pattern: boolean, names: string[], max: number, refusals: RefusalLog): RespValue[] | RespValue {
  const refused = overSubscriptionCaps(client, pattern, names, max, refusals);
  if (refused) return refused;
  return names.map((n) => {
    if (pattern) client.patterns.set(n, new Glob(n));
    else client.channels.add(n);
    return push([bulk(pattern ? 'psubscribe' : 'subscribe'), bulk(n), int(subscriptions(client))]);
  });
}

/** An error reply when adding `names` would pass a cap; then none of them is added. */
function overSubscriptionCaps(client: Client, pattern: boolean, names: string[], max: number, refusals: RefusalLog): RespValue | undefined {
  if (pattern && names.some((n) => Buffer.byteLength(n) > MAX_PATTERN_BYTES)) {
    return error(`ERR pattern too long: at most ${MAX_PATTERN_BYTES} bytes`);
  }
  const held = pattern ? client.patterns : client.channels;
  const after = new Set([...held.keys(), ...names]).size;
  if (after <= max) return undefined;
  refusals.refused('subscription refused over the cap', { address: client.address, client: client.id, pattern, max });
  return error(`ERR too many ${pattern ? 'patterns' : 'channels'} for one client: at most ${max}`);
}

/** UNSUBSCRIBE / PUNSUBSCRIBE: the named channels (patterns), or all of them. */
export function unsubscribe(client: Client, pattern: boolean, names: string[]): RespValue[] {
  const all = pattern ? [...client.patterns.keys()] : [...client.channels];
  const targets = names.length > 0 ? names : all;
  const kind = pattern ? 'punsubscribe' : 'unsubscribe';
  if (targets.length === 0) return [push([bulk(kind), bulk(null), int(subscriptions(client))])];
  return targets.map((n) => {
    if (pattern) client.patterns.delete(n);
    else client.channels.delete(n);
    return push([bulk(kind), bulk(n), int(subscriptions(client))]);
  });
}

/** Sends a published event to every client subscribed to its channel or a matching pattern. */
export function deliver(clients: Iterable<Client>, channel: string, message: string): void {
  const bytes = Buffer.from(channel, 'utf8');
  for (const c of clients) {
    if (c.channels.has(channel)) writeReplies(c, push([bulk('message'), bulk(channel), bulk(message)]));
    for (const [pattern, glob] of c.patterns) {
      if (glob.matches(bytes)) writeReplies(c, push([bulk('pmessage'), bulk(pattern), bulk(channel), bulk(message)]));
    }
  }
}

/**
 * The instance a Sentinel event is about, read from the message as Sentinel shapes it:
 * `master <name> <ip> <port> ...`, `slave <ip:port> <ip> <port> @ <name> <ip> <port>`, or
 * for +switch-master `<name> <old ip> <old port> <new ip> <new port>`.
 */
export function eventInstance(message: string): string | undefined {
  const words = message.split(' ');
  const at = words.indexOf('@');
  if (at >= 0) return words[at + 1];
  if (words[0] === 'master') return words[1];
  return words[0] || undefined;
}
