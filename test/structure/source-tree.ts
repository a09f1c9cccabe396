import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The repository's root: the nearest directory above this file with a package.json. The checks
 * run from dist/test/..., but they read the TypeScript sources in src/, not the compiled output.
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above the structure checks');
    dir = up;
  }
  return dir;
}

/** A source file under src/, by its repository path with forward slashes (`src/api/server.ts`). */
export interface SourceFile {
  path: string;
  text: string;
  ast: ts.SourceFile;
}

/** Every .ts file under `root/src` (declaration files too), parsed. */
export function sourceFiles(root: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const full = join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (entry.endsWith('.ts')) {
        const path = relative(root, full).split(sep).join('/');
        const text = readFileSync(full, 'utf8');
        out.push({ path, text, ast: ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS) });
      }
    }
  };
  walk(join(root, 'src'));
  return out;
}
