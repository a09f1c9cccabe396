import { execFileSync } from 'node:child_process';
import type { Logger } from '../logger.js';

/** A redis-server binary this agent offers: its path and the version its `--version` reports. */
export interface RedisBinary {
  path: string;
  /** e.g. "7.0.15"; '' when the binary did not answer (a LAUNCH of it then fails with the reason). */
  version: string;
}

/**
 * The binaries given with `--redis-server` (repeatable, or a comma list), each asked for its
 * version once at start. The first is the agent's default. A binary that cannot run is still
 * listed, with no version, so that a LAUNCH of it fails with the reason rather than the agent.
 */
export function probeBinaries(paths: string[], log: Logger): RedisBinary[] {
  const unique = [...new Set(paths.filter((p) => p !== ''))];
  return unique.map((path) => {
    try {
      const out = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
      const version = /\bv=([0-9][0-9A-Za-z.+-]*)/.exec(out)?.[1] ?? '';
      log.info('redis-server binary', { path, version });
      return { path, version };
    } catch (err) {
      log.warn('redis-server binary does not answer --version', { path, error: (err as Error).message });
      return { path, version: '' };
    }
  });
}

/** `--redis-server` values (each possibly a comma list) as one list of paths. */
export function binaryPaths(values: string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((p) => p.trim()).filter((p) => p !== '');
}
