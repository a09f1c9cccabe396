/**
 * bench/sentinel-endpoint: what hostile input costs the Sentinel-compatible endpoint (issue 7,
 * A1 and A2), measured in process with no fleet:
 * - matching 64 hostile glob patterns (100 stars each, in four shapes) against 1,000 channels:
 *   the time to deliver one event to such a client, per channel;
 * - parsing a near-cap (about 56 KiB) request fed one byte at a time, and a 1.75 MB pipeline of
 *   small commands in 7-byte chunks.
 *
 *   npm run build && node dist/bench/sentinel-endpoint.js
 */
import { Glob } from '../src/sentinel/glob.js';
import { RespParser } from '../src/sentinel/resp.js';
import { summarize, summaryHeader, summaryRow } from './figures.js';
import { describeMachine, machineLines } from './machine.js';
import { runMain } from './program.js';

const LAYOUT = { labelWidth: 44, cellWidth: 9, digits: 3 };

function hostilePatterns(): Glob[] {
  const shapes = [
    (i: number) => `${'*'.repeat(100)}Z${i}`,
    (i: number) => `${'*?'.repeat(100)}Z${i}`,
    (i: number) => `${'*a'.repeat(100)}${i}`,
    (i: number) => `${'*[a-z]'.repeat(25)}${'*'.repeat(75)}${i}`,
  ];
  return Array.from({ length: 64 }, (_, i) => new Glob(shapes[i % shapes.length](i)));
}

/** Per channel: ms to test it against every pattern of one hostile client. */
function globFigures(): number[] {
  const patterns = hostilePatterns();
  const channels = Array.from({ length: 1000 }, (_, i) => Buffer.from(`+switch-master-${'a'.repeat(i % 200)}-${i}`));
  for (const c of channels) for (const g of patterns) g.matches(c);
  return channels.map((c) => {
    const t0 = process.hrtime.bigint();
    for (const g of patterns) g.matches(c);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  });
}

function timeParse(wire: Buffer, chunk: number): { ms: number; commands: number } {
  const parser = new RespParser();
  let commands = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < wire.length; i += chunk) commands += parser.push(wire.subarray(i, i + chunk)).length;
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, commands };
}

async function main(): Promise<number> {
  console.log('node dist/bench/sentinel-endpoint.js');
  console.log(machineLines(describeMachine([])).join('\n'));
  console.log(summaryHeader(LAYOUT));
  console.log(summaryRow('1 event x 64 hostile patterns (per channel)', summarize(globFigures()), LAYOUT));

  const args = Array.from({ length: 1000 }, (_, i) => `${i}`.padStart(50, 'a'));
  const request = Buffer.from(`*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`);
  const pipeline = Buffer.from('*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nPING\r\n$1\r\nx\r\n'.repeat(50_000));
  const near = [0, 1, 2, 3, 4].map(() => timeParse(request, 1).ms);
  const piped = [0, 1, 2].map(() => timeParse(pipeline, 7).ms);
  console.log(summaryRow(`${request.length} B request in 1-byte chunks`, summarize(near), LAYOUT));
  console.log(summaryRow(`${pipeline.length} B pipeline in 7-byte chunks`, summarize(piped), LAYOUT));
  return 0;
}

runMain('sentinel-endpoint', main);
