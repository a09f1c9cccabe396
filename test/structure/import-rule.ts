import { posix } from 'node:path';
import ts from 'typescript';
import type { SourceFile } from './source-tree.js';

/**
 * The import rule of issue 8: domain <- store <- {scheduler, executor}; api and sentinel see the
 * domain (with the service interface in src/domain/services.ts) and nothing else of ours; only
 * cli wires the whole together.
 *
 * - `shared` is src/proto, src/logger.ts, src/errors.ts, src/net.ts, src/checksum.ts and src/slices.ts: utilities anyone may
 *   import. They may import each other and the domain, nothing else (or a layer would reach
 *   another through them).
 * - api and sentinel do not import each other. They are siblings that the scheduler process
 *   serves side by side (HTTP and RESP); neither needs the other's code, and what both need (the
 *   model, the rules, the service interface they are given) is in the domain.
 * - devtools (the etcd child process, stopping child processes) sees domain, store and shared.
 * - A file outside every layer (a new src/x.ts, say) is itself a violation: add it to a layer.
 * - `import type` counts too: a type import is still a dependency a reader must follow.
 */
export type Layer = 'domain' | 'store' | 'scheduler' | 'executor' | 'api' | 'sentinel' | 'devtools' | 'cli' | 'shared';

const SHARED_FILES = new Set(['src/logger.ts', 'src/errors.ts', 'src/net.ts', 'src/checksum.ts', 'src/slices.ts']);

/** What each layer may import, besides itself. `cli` may import anything. */
const ALLOWED: Record<Exclude<Layer, 'cli'>, Layer[]> = {
  domain: [],
  shared: ['domain'],
  store: ['domain', 'shared'],
  scheduler: ['domain', 'store', 'shared'],
  executor: ['domain', 'store', 'shared'],
  api: ['domain', 'shared'],
  sentinel: ['domain', 'shared'],
  devtools: ['domain', 'store', 'shared'],
};

/** The layer of a repository path (`src/api/server.ts` is api), or undefined outside every layer. */
export function layerOf(path: string): Layer | undefined {
  if (SHARED_FILES.has(path) || path.startsWith('src/proto/')) return 'shared';
  const top = /^src\/([^/]+)\//.exec(path)?.[1];
  const layers: Layer[] = ['domain', 'store', 'scheduler', 'executor', 'api', 'sentinel', 'devtools', 'cli'];
  return layers.find((l) => l === top);
}

/** One import of ours by a file under src/: `import`, `export ... from`, `import()`, `import type`. */
export interface Import {
  from: string;
  line: number;
  specifier: string;
  /** The imported file's repository path (`src/store/keys.ts` for '../store/keys.js'). */
  target: string;
}

/** The relative imports (ours) of one file; packages are not ours and not listed. */
export function importsOf(file: SourceFile): Import[] {
  const out: Import[] = [];
  const add = (node: ts.Node, literal: ts.Expression | undefined): void => {
    if (!literal || !ts.isStringLiteralLike(literal) || !literal.text.startsWith('.')) return;
    out.push({
      from: file.path,
      line: file.ast.getLineAndCharacterOfPosition(node.getStart(file.ast)).line + 1,
      specifier: literal.text,
      target: posix.normalize(posix.join(posix.dirname(file.path), literal.text)).replace(/\.js$/, '.ts'),
    });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node, node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node, node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(file.ast);
  return out;
}

/** Every import that breaks the rule, as `file:line imports 'specifier' (layer -> layer)`. */
export function importViolations(files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    const from = layerOf(file.path);
    if (!from) {
      out.push(`${file.path} is in no layer (add it to a folder of one, or to the shared files)`);
      continue;
    }
    if (from === 'cli') continue;
    for (const imp of importsOf(file)) {
      const to = layerOf(imp.target);
      if (to === from || (to && ALLOWED[from].includes(to))) continue;
      out.push(`${imp.from}:${imp.line} imports '${imp.specifier}' (${from} -> ${to ?? `outside src: ${imp.target}`})`);
    }
  }
  return out;
}
