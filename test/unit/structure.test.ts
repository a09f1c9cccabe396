import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot, sourceFiles } from '../structure/source-tree.js';
import { importViolations } from '../structure/import-rule.js';
import { MAX_FUNCTION_LINES, sizeViolations } from '../structure/size-limit.js';

/**
 * Files and functions allowed over the size limits, each with the reason the README gives.
 * Key: `src/path.ts` for a file, `src/path.ts#name` for a function (the name as the check
 * prints it: `Class.method`, the variable an arrow is bound to).
 */
const SIZE_EXCEPTIONS: Record<string, string> = {};

/** A throwaway source tree: { 'src/api/x.ts': '...' } written under a temp dir. */
function tree(files: Record<string, string>): { root: string; remove: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'redfleet-structure-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}

function violationsIn(files: Record<string, string>, check: (root: string) => string[]): string[] {
  const t = tree(files);
  try {
    return check(t.root);
  } finally {
    t.remove();
  }
}

const importCheck = (root: string) => importViolations(sourceFiles(root));
const sizeCheck = (allowed: Record<string, string> = {}) => (root: string) => sizeViolations(sourceFiles(root), allowed);

describe('structure: the import rule (domain <- store <- {scheduler, executor}; api, sentinel see the domain)', () => {
  it('holds in src/', () => {
    const violations = importViolations(sourceFiles(repoRoot()));
    expect(violations, `imports that break the rule:\n  ${violations.join('\n  ')}\n`).to.deep.equal([]);
  });

  it('catches every kind of import that crosses a layer, type-only ones too', () => {
    const found = violationsIn({
      'src/domain/model.ts': "import { log } from '../logger.js';\n",
      'src/store/keys.ts': "import type { Api } from '../api/server.js';\n",
      'src/scheduler/a.ts': "export { x } from '../executor/agent.js';\n",
      'src/executor/b.ts': "const m = await import('../scheduler/framework.js');\n",
      'src/api/c.ts': "let s: import('../store/fleet-store.js').FleetStore;\n",
      'src/sentinel/d.ts': "import '../api/server.js';\n",
      'src/devtools/e.ts': "import { x } from '../cli/main.js';\n",
      'src/stray.ts': 'export const x = 1;\n',
      'src/logger.ts': "import { FleetStore } from './store/fleet-store.js';\n",
    }, importCheck);
    expect(found).to.deep.equal([
      "src/api/c.ts:1 imports '../store/fleet-store.js' (api -> store)",
      "src/devtools/e.ts:1 imports '../cli/main.js' (devtools -> cli)",
      "src/domain/model.ts:1 imports '../logger.js' (domain -> shared)",
      "src/executor/b.ts:1 imports '../scheduler/framework.js' (executor -> scheduler)",
      "src/logger.ts:1 imports './store/fleet-store.js' (shared -> store)",
      "src/scheduler/a.ts:1 imports '../executor/agent.js' (scheduler -> executor)",
      "src/sentinel/d.ts:1 imports '../api/server.js' (sentinel -> api)",
      "src/store/keys.ts:1 imports '../api/server.js' (store -> api)",
      'src/stray.ts is in no layer (add it to a folder of one, or to the shared files)',
    ]);
  });

  it('lets each layer import what the rule allows, and cli anything', () => {
    expect(violationsIn({
      'src/domain/rules.ts': "import { Proc } from './model.js';\nimport { EventEmitter } from 'node:events';\n",
      'src/store/keys.ts': "import type { Proc } from '../domain/model.js';\nimport { log } from '../logger.js';\nimport { pb } from '../proto/messages.js';\n",
      'src/scheduler/a.ts': "import { keys } from '../store/keys.js';\nimport { NotFoundError } from '../errors.js';\nimport { b } from './b.js';\n",
      'src/executor/a.ts': "import { keys } from '../store/keys.js';\nimport { freePort } from '../net.js';\n",
      'src/api/a.ts': "import type { FleetService } from '../domain/services.js';\n",
      'src/sentinel/a.ts': "import { isServing } from '../domain/rules.js';\n",
      'src/devtools/a.ts': "import { keys } from '../store/keys.js';\n",
      'src/proto/recordio.ts': "import { ProtocolError } from '../errors.js';\n",
      'src/cli/main.ts': "import '../scheduler/a.js';\nimport '../executor/a.js';\nimport '../api/a.js';\nimport '../devtools/a.js';\n",
    }, importCheck)).to.deep.equal([]);
  });
});

describe('structure: size limits (files <= 300 lines, functions <= 60 lines in src/)', () => {
  it('hold in src/, apart from the listed exceptions', () => {
    const violations = sizeViolations(sourceFiles(repoRoot()), SIZE_EXCEPTIONS);
    expect(violations, `over the limits:\n  ${violations.join('\n  ')}\n`).to.deep.equal([]);
  });

  const body = (lines: number) => Array.from({ length: lines - 2 }, (_, i) => `  const v${i} = ${i};`).join('\n');
  const fn = (name: string, lines: number) => `export function ${name}(): void {\n${body(lines)}\n}\n`;

  it('catches a long file, function, method, arrow and function expression; a generated file is exempt', () => {
    const found = violationsIn({
      'src/api/long.ts': `${'// filler\n'.repeat(301)}`,
      'src/api/ok.ts': `${'// filler\n'.repeat(300)}`,
      'src/api/fits.ts': fn('fits', MAX_FUNCTION_LINES),
      'src/api/function.ts': `// a function\n${fn('tooLong', MAX_FUNCTION_LINES + 1)}`,
      'src/api/method.ts': `export class Agent {\n  start(): void {\n${body(MAX_FUNCTION_LINES + 1)}\n  }\n}\n`,
      'src/api/arrow.ts': `export const handler = () => {\n${body(MAX_FUNCTION_LINES + 1)}\n};\n`,
      'src/api/expression.ts': `export const routes = { list: function () {\n${body(MAX_FUNCTION_LINES + 1)}\n} };\n`,
      'src/proto/redfleet.js': '',
      'src/proto/redfleet.d.ts': '// generated\n'.repeat(400),
    }, sizeCheck());
    expect(found).to.deep.equal([
      'src/api/arrow.ts:1 handler: 61 lines (limit 60)',
      'src/api/expression.ts:1 list: 61 lines (limit 60)',
      'src/api/function.ts:2 tooLong: 61 lines (limit 60)',
      'src/api/long.ts: 301 lines (limit 300)',
      'src/api/method.ts:2 Agent.start: 61 lines (limit 60)',
    ]);
  });

  it('counts a function from its first line, not its doc comment', () => {
    expect(violationsIn({ 'src/api/doc.ts': `/**\n${' * why\n'.repeat(20)} */\n${fn('documented', MAX_FUNCTION_LINES)}` }, sizeCheck())).to.deep.equal([]);
  });

  it('excuses what the allowlist names with a reason, and flags stale or reasonless entries', () => {
    const files = { 'src/api/long.ts': '// filler\n'.repeat(301), 'src/api/fns.ts': fn('tooLong', MAX_FUNCTION_LINES + 1) };
    expect(violationsIn(files, sizeCheck({ 'src/api/long.ts': 'one table', 'src/api/fns.ts#tooLong': 'one switch' }))).to.deep.equal([]);
    expect(violationsIn(files, sizeCheck({ 'src/api/long.ts': ' ', 'src/api/fns.ts#tooLong': 'x', 'src/api/gone.ts': 'was long' }))).to.deep.equal([
      'allowlist entry src/api/long.ts gives no reason',
      'allowlist entry src/api/gone.ts excuses nothing any more: remove it',
    ]);
  });
});
