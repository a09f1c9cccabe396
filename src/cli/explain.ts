/**
 * Turns the raw errors of the libraries under the CLI (gRPC from etcd3, undici's fetch) into one
 * sentence that says what to check. The library text stays at the end, shortened to its cause,
 * for whoever has to dig further.
 */

/** Where the failing command was pointed: filled in by each command as it parses its flags. */
export interface Endpoints {
  etcd?: string;
  scheduler?: string;
}

const ETCD_FAILURE = /\b14 UNAVAILABLE\b|\b4 DEADLINE_EXCEEDED\b|No connection established|lost connection to etcd|\bLease\b.*\blost\b/i;
/** etcd3's classes for a connection that failed or a lease that ran out while etcd was away. */
const ETCD_ERROR_NAMES = new Set(['GRPCUnavailableError', 'GRPCConnectFailedError', 'GRPCDeadlineExceededError', 'EtcdLeaseInvalidError']);
const HTTP_FAILURE = /ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|fetch failed|socket hang up/i;

export function explainError(err: Error, at: Endpoints): string {
  const message = err.message ?? String(err);
  if (ETCD_FAILURE.test(message) || ETCD_ERROR_NAMES.has(err.constructor?.name ?? '')) {
    const where = at.etcd ? `etcd at ${at.etcd}` : 'etcd (--etcd or REDFLEET_ETCD)';
    return `lost or could not reach ${where}: check that etcd is running there and reachable from this host, and that --etcd names it (${causeOf(message)})`;
  }
  if (at.scheduler && HTTP_FAILURE.test(`${message} ${String((err as { cause?: unknown }).cause ?? '')}`)) {
    return `could not reach the scheduler at ${at.scheduler}: check that it is running and that --scheduler names its API address (${causeOf(message)})`;
  }
  return message;
}

/** The useful tail of a library message: "connect ECONNREFUSED 127.0.0.1:2379" rather than gRPC's prose. */
function causeOf(message: string): string {
  const socket = /(connect|getaddrinfo|read|write) (E[A-Z]+)( [^\s,]+)?/.exec(message);
  if (socket) return `${socket[1]} ${socket[2]}${socket[3] ?? ''}`.replace(/\.$/, '');
  const first = message.split('\n')[0].trim();
  return first.length > 120 ? `${first.slice(0, 117)}...` : first;
}
