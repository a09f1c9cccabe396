import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
import { parsePortRange, PORT_RANGE_FORM, type PortRange } from '../proto/messages.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses flags strictly; every unknown or malformed flag becomes a UsageError. */
export function parseFlags(argv: string[], options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
}

export function intFlag(value: string | boolean | undefined, flag: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !/^[0-9]+(\.[0-9]+)?$/.test(value) || n < min) throw new UsageError(`--${flag} must be a number of at least ${min}, got '${value}'`);
  return n;
}

/** `90`, `45s`, `30m`, `2h`, `1d` → seconds. */
export function parseDuration(text: string): number {
  const m = /^([0-9]+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`--ttl must look like 90, 45s, 30m, 2h or 1d, got '${text}'`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(m[1]) * unit;
  if (seconds < 1) throw new UsageError('--ttl must be at least 1 second');
  return seconds;
}

export function str(value: string | boolean | undefined, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/** A port range flag (`--ports 6380-6479`); a bad range is a UsageError naming the flag. */
export function portRangeFlag(value: string, flag: string): PortRange {
  try {
    return parsePortRange(value);
  } catch {
    throw new UsageError(`--${flag} must be ${PORT_RANGE_FORM}, got '${value}'`);
  }
}
