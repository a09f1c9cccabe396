import { Redis } from 'ioredis';

/**
 * What each proc says it is (ROLE), asked directly with the tenant password; 'unreachable' when
 * it does not answer within a moment. Partition tests use it to count masters after a heal.
 */
export async function roles(procs: { ip: string; port: number }[], password: string): Promise<string[]> {
  return Promise.all(procs.map(async (p) => {
    const r = new Redis({ host: p.ip, port: p.port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 300, commandTimeout: 300 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return String(((await r.role()) as string[])[0]);
    } catch {
      return 'unreachable';
    } finally {
      r.disconnect();
    }
  }));
}
