import winston from 'winston';

export type Logger = winston.Logger;

/**
 * One JSON object per line on stderr. Every event names its component, and callers add
 * `instance`, `proc` and `agent` fields so that a proc's life can be followed with grep.
 */
export function createLogger(component: string, fields: Record<string, unknown> = {}): Logger {
  return winston.createLogger({
    level: process.env.REDFLEET_LOG_LEVEL ?? 'info',
    defaultMeta: { component, ...fields },
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: Object.keys(winston.config.npm.levels) })],
  });
}
