/**
 * bench/program: what every benchmark's entry shares: its flags, parsed with `node:util`
 * parseArgs as the `redfleet` command parses its own, and how its main sets the exit code.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** A benchmark's name (the prefix of its error lines) and its --help text. */
export interface Program {
  name: string;
  usage: string;
}

/** Ends the program with a usage error: `name: message` on stderr, exit status 2. */
export function fail(program: Program, message: string): never {
  console.error(`${program.name}: ${message}`);
  process.exit(2);
}

/**
 * The values of a benchmark's flags, parsed strictly: `-h`/`--help` prints the usage and exits 0;
 * an unknown flag, a missing value or a positional argument ends the program with the usage.
 * Every option is a string flag here unless `options` says otherwise.
 */
export function parseFlags(program: Program, argv: string[], options: Options): Record<string, string | boolean | undefined> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (err) {
    fail(program, `${(err as Error).message.split('\n')[0]}\n${program.usage}`);
  }
  if (values.help) {
    console.log(program.usage);
    process.exit(0);
  }
  return values;
}

/** A whole-number flag from `min` to `max` (at most 6 digits), `fallback` when absent; else a usage error. */
export function wholeFlag(program: Program, v: string | boolean | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  const text = String(v);
  if (!/^[0-9]{1,6}$/.test(text) || Number(text) < min || Number(text) > max) fail(program, `--${flag} must be a whole number from ${min} to ${max}, got '${text}'`);
  return Number(text);
}

/**
 * `--runs N` (or `--runs=N`): N a whole number from 1 to `max`, `fallback` when absent. A bad N
 * ends the program with a usage error.
 */
export function runsFlag(program: Program, value: string | boolean | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  if (!new RegExp(`^[0-9]{1,${String(max).length}}$`).test(text) || Number(text) < 1 || Number(text) > max) {
    fail(program, `--runs must be a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/**
 * Runs a benchmark's main and sets the exit code from it, without process.exit: pending exit
 * handlers (ours and LocalFleet's) still run and stdout is flushed.
 */
export function runMain(program: string, main: () => Promise<number>): void {
  main().then(
    (code) => { process.exitCode = code; },
    (err: Error) => {
      console.error(`${program}: ${err.stack ?? err.message}`);
      process.exitCode = 1;
    },
  );
}
