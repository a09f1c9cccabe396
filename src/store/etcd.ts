import { Etcd3 } from 'etcd3';

/** `urls` is the comma-separated list the commands take: `http://127.0.0.1:2379,http://...`. */
export function connectEtcd(urls: string): Etcd3 {
  const hosts = urls.split(',').map((u) => u.trim()).filter(Boolean);
  if (hosts.length === 0) throw new Error('no etcd URL given; pass --etcd http://127.0.0.1:2379');
  return new Etcd3({ hosts, dialTimeout: 3000 });
}
