import type { SentinelMaster, SentinelReplica } from '../domain/services.js';
import { bulk, map, type RespValue } from './resp.js';

/** SENTINEL MASTER(S): one master's fields, named as Sentinel names them. */
export function masterReply(m: SentinelMaster): RespValue {
  const now = Date.now();
  return map([
    ['name', bulk(m.name)],
    ['ip', bulk(m.ip)],
    ['port', bulk(String(m.port))],
    ['runid', bulk(m.runid)],
    ['flags', bulk(m.flags.join(','))],
    ['link-pending-commands', bulk('0')],
    ['link-refcount', bulk('1')],
    ['last-ping-sent', bulk(String(m.lastPingSentMs ? Math.max(0, now - m.lastPingSentMs) : 0))],
    ['last-ok-ping-reply', bulk(String(Math.max(0, now - m.lastOkPingReplyMs)))],
    ['last-ping-reply', bulk(String(Math.max(0, now - m.lastOkPingReplyMs)))],
    ['down-after-milliseconds', bulk(String(m.downAfterMs))],
    ['info-refresh', bulk('1000')],
    ['role-reported', bulk('master')],
    ['role-reported-time', bulk('0')],
    ['config-epoch', bulk(String(m.configEpoch))],
    ['num-slaves', bulk(String(m.numSlaves))],
    ['num-other-sentinels', bulk('0')],
    ['quorum', bulk('1')],
    ['failover-timeout', bulk(String(m.failoverTimeoutMs))],
    ['parallel-syncs', bulk('1')],
  ]);
}

/** SENTINEL REPLICAS: one replica's fields. */
export function replicaReply(r: SentinelReplica): RespValue {
  return map([
    ['name', bulk(`${r.ip}:${r.port}`)],
    ['ip', bulk(r.ip)],
    ['port', bulk(String(r.port))],
    ['runid', bulk(r.runid)],
    ['flags', bulk(r.flags.join(','))],
    ['link-pending-commands', bulk('0')],
    ['link-refcount', bulk('1')],
    ['role-reported', bulk('slave')],
    ['master-link-down-time', bulk(String(r.masterLinkDownMs))],
    ['master-link-status', bulk(r.masterLinkStatus === 'up' ? 'ok' : 'err')],
    ['master-host', bulk(r.masterHost)],
    ['master-port', bulk(String(r.masterPort))],
    ['slave-priority', bulk(String(r.priority))],
    ['slave-repl-offset', bulk(String(r.offset))],
    ['replica-announced', bulk('1')],
  ]);
}

/** INFO's text: the Server and Sentinel sections, one line per master. */
export function infoText(myid: string, masters: SentinelMaster[]): string {
  const lines = [
    '# Server',
    'redis_version:7.0.15',
    'redis_mode:sentinel',
    `run_id:${myid}`,
    '',
    '# Sentinel',
    `sentinel_masters:${masters.length}`,
    'sentinel_tilt:0',
    'sentinel_running_scripts:0',
    'sentinel_scripts_queue_length:0',
    ...masters.map((m, i) => `master${i}:name=${m.name},status=${m.flags.includes('o_down') ? 'odown' : m.flags.includes('s_down') ? 'sdown' : 'ok'},address=${m.ip}:${m.port},slaves=${m.numSlaves},sentinels=1`),
  ];
  return `${lines.join('\r\n')}\r\n`;
}
