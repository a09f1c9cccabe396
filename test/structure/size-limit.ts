import ts from 'typescript';
import type { SourceFile } from './source-tree.js';

/** Issue 8: no file in src/ over 300 lines, no function over 60. */
export const MAX_FILE_LINES = 300;
export const MAX_FUNCTION_LINES = 60;

/** Generated from proto/ by protobufjs-cli (scripts/gen-proto.sh), never edited by hand. */
export function isGenerated(path: string): boolean {
  return /^src\/proto\/redfleet\./.test(path);
}

/** Lines as an editor numbers them: a final newline does not start another line. */
export function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/** A function, method, accessor, constructor, arrow function or function expression. */
export interface FunctionSpan {
  path: string;
  name: string;
  line: number;
  lines: number;
}

/** A readable name: `Class.method`, the variable or property an arrow is bound to, or `<arrow>`. */
function nameOf(node: ts.Node, ast: ts.SourceFile): string {
  const text = (n: ts.Node | undefined) => (n ? n.getText(ast) : undefined);
  const owner = ts.isClassLike(node.parent) ? `${text(node.parent.name) ?? '<class>'}.` : '';
  if (ts.isConstructorDeclaration(node)) return `${owner}constructor`;
  if (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isGetAccessor(node) || ts.isSetAccessor(node)) {
    return `${owner}${text(node.name) ?? '<function>'}`;
  }
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    const holder = ts.isPropertyDeclaration(parent) && ts.isClassLike(parent.parent) ? `${text(parent.parent.name) ?? '<class>'}.` : '';
    return `${holder}${text(parent.name)}`;
  }
  if (ts.isFunctionExpression(node) && node.name) return text(node.name)!;
  return ts.isArrowFunction(node) ? '<arrow>' : '<function>';
}

/** Every function-like node of a file with a body, and its span from its first to its last line. */
export function functionsOf(file: SourceFile): FunctionSpan[] {
  const out: FunctionSpan[] = [];
  const visit = (node: ts.Node): void => {
    const isFunction = ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isConstructorDeclaration(node)
      || ts.isGetAccessor(node) || ts.isSetAccessor(node) || ts.isArrowFunction(node) || ts.isFunctionExpression(node);
    if (isFunction && node.body) {
      // getStart skips the leading doc comment: a well-commented function is not a longer one.
      const first = file.ast.getLineAndCharacterOfPosition(node.getStart(file.ast)).line;
      const last = file.ast.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({ path: file.path, name: nameOf(node, file.ast), line: first + 1, lines: last - first + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(file.ast);
  return out;
}

/**
 * Every file and function over the limits that the allowlist does not excuse, and every
 * allowlist entry that no longer excuses anything (so the list cannot outlive its reasons).
 * Allowlist keys are `src/path.ts` for a file and `src/path.ts#name` for a function (the name as
 * this check prints it); each value is the reason, which the README repeats.
 */
export function sizeViolations(files: SourceFile[], allowed: Record<string, string>): string[] {
  const out: string[] = [];
  const used = new Set<string>();
  const excused = (key: string): boolean => {
    if (!(key in allowed)) return false;
    used.add(key);
    return true;
  };
  for (const file of files) {
    if (isGenerated(file.path)) continue;
    const lines = lineCount(file.text);
    if (lines > MAX_FILE_LINES && !excused(file.path)) out.push(`${file.path}: ${lines} lines (limit ${MAX_FILE_LINES})`);
    for (const fn of functionsOf(file)) {
      if (fn.lines > MAX_FUNCTION_LINES && !excused(`${fn.path}#${fn.name}`)) {
        out.push(`${fn.path}:${fn.line} ${fn.name}: ${fn.lines} lines (limit ${MAX_FUNCTION_LINES})`);
      }
    }
  }
  for (const [key, reason] of Object.entries(allowed)) {
    if (!reason.trim()) out.push(`allowlist entry ${key} gives no reason`);
    if (!used.has(key)) out.push(`allowlist entry ${key} excuses nothing any more: remove it`);
  }
  return out;
}
