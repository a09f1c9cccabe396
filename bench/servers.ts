/**
 * bench/servers: what a benchmark needs to run servers of its own on this machine: free ports, a
 * check that one listens, and a throwaway redis-server's config.
 */
import { connect } from 'node:net';
import { freePort } from '../src/net.js';

/** `n` distinct free ports on 127.0.0.1, for processes started next (bounded: throws if it cannot). */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < n && tries < 100 * n; tries++) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  if (ports.length < n) throw new Error(`could not find ${n} distinct free ports`);
  return ports;
}

/**
 * Whether something accepts connections on 127.0.0.1:`port` (a started server is up). With
 * `timeoutMs`, a connect that hangs (a frozen listener) counts as closed after that long.
 */
export function portOpen(port: number, timeoutMs?: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    if (timeoutMs !== undefined) {
      sock.setTimeout(timeoutMs, () => {
        sock.destroy();
        resolve(false);
      });
    }
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * A redis-server config for a throwaway server in `dir`: no persistence, diskless replication
 * with no delay (as RedFleet runs its procs), `maxmemoryMb`, and any `extra` lines at the end.
 */
export function redisServerConf(port: number, dir: string, maxmemoryMb: number, extra: readonly string[] = []): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    'daemonize no',
    `dir ${dir}`,
    `logfile ${dir}/redis.log`,
    'save ""',
    'appendonly no',
    `maxmemory ${maxmemoryMb}mb`,
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    ...extra,
    '',
  ].join('\n');
}
