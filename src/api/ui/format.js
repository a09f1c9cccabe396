// Pure formatting: numbers, durations and the tone (colour class) of a status. The tone only
// adds colour; every status is also written out as text.

const MB = 1024 * 1024;

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatMb(mb) {
  return formatBytes(mb * MB);
}

/** 45 s, 12 min, 3 h 20 min, 2 d 4 h. */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** A local date and time, to the second. */
export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso ?? '–');
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const INSTANCE_TONES = { RUNNING: 'ok', CREATING: 'info', DEGRADED: 'warn', DELETING: 'neutral', DELETED: 'neutral' };
const PROC_TONES = { RUNNING: 'ok', STAGING: 'info', STARTING: 'info', FINISHED: 'neutral', KILLED: 'neutral' };

export function instanceTone(status) {
  return INSTANCE_TONES[status] ?? 'bad';
}

export function procTone(state) {
  return PROC_TONES[state] ?? 'bad';
}

/** How many ports the spans hold ([{begin,end}]). */
export function portCount(spans) {
  return (spans ?? []).reduce((n, s) => n + Math.max(0, s.end - s.begin + 1), 0);
}

/**
 * A replica's replication against its master, from the INFO figures the agents write every
 * second: the link state, the lag in bytes (master_repl_offset minus the replica's offset, never
 * below 0: the two figures are read up to a second apart) and the seconds since the replica last
 * heard from its master (master_last_io_seconds_ago).
 */
export function replication(master, replica) {
  const stats = replica?.stats;
  if (!stats) return { link: 'unknown', lagBytes: null, ioSeconds: null };
  const masterOffset = master?.stats?.replOffset;
  const lagBytes = Number.isFinite(masterOffset) && Number.isFinite(stats.replOffset) ? Math.max(0, masterOffset - stats.replOffset) : null;
  return { link: stats.masterLinkStatus ?? 'unknown', lagBytes, ioSeconds: stats.lastIoSecondsAgo ?? null };
}

/** "0 B behind, heard 1 s ago" (the link state goes in its own badge). */
export function describeReplication(r) {
  const parts = [];
  if (r.lagBytes !== null) parts.push(`${formatBytes(r.lagBytes)} behind`);
  if (r.ioSeconds !== null) parts.push(`heard ${formatDuration(r.ioSeconds)} ago`);
  return parts.join(', ');
}

export function linkTone(link) {
  if (link === 'up') return 'ok';
  return link === 'unknown' ? 'neutral' : 'bad';
}

/** Used memory against capacity: the text and the share (0..1). */
export function memoryUse(usedBytes, capacityMb) {
  const cap = capacityMb * MB;
  if (!Number.isFinite(usedBytes) || !(cap > 0)) return { text: `– of ${formatMb(capacityMb)}`, share: 0 };
  const share = usedBytes / cap;
  return { text: `${formatBytes(usedBytes)} of ${formatMb(capacityMb)} (${Math.round(share * 100)}%)`, share };
}
