/** bench/create-latency/parameters: the topology and the bounds both sides of the benchmark share. */

export const RUN_TIMEOUT_MS = 30_000;
export const POLL_MS = 2;
/** Upper bound on polls in one wait, whatever the clock does. */
export const MAX_POLLS = Math.ceil(RUN_TIMEOUT_MS / POLL_MS) + 1;
export const CAPACITY_MB = 64;
export const REPLICAS = 2;
/** Give up on the whole benchmark after this many failed runs in a row on one side. */
export const MAX_CONSECUTIVE_FAILURES = 3;
export const REPRODUCE = 'npm run bench:create';
/** Servers whose versions the report gives, and whose other instances on the machine count as noise. */
export const SERVERS = ['redis-server', 'etcd'] as const;
