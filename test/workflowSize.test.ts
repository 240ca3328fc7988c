// Workflow code stays readable as a state machine: no function in workflows/ past 80 lines, and the sandbox entity's
// file under 300. Counted with the TypeScript compiler's own parser, so a function is what the language says it is.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const WORKFLOWS = path.join(__dirname, '..', 'workflows');
const MAX_FUNCTION_LINES = 80;
const MAX_ENTITY_FILE_LINES = 300;

function workflowFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return workflowFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

type Fn = ts.FunctionLikeDeclaration & { body: ts.Node };

/** Every function with a body in `file`, named as a reader would look for it, with its length in lines. */
export function functionLengths(file: string, text = fs.readFileSync(file, 'utf8')): { name: string; lines: number }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { name: string; lines: number }[] = [];
  const nameOf = (node: Fn): string => {
    if (node.name) return node.name.getText(source);
    const parent = node.parent;
    if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))
      return parent.name.getText(source);
    return `<anonymous>`;
  };
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && (node as Fn).body) {
      const fn = node as Fn;
      const start = source.getLineAndCharacterOfPosition(fn.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(fn.getEnd()).line;
      const line = start + 1;
      found.push({ name: `${path.relative(path.join(WORKFLOWS, '..'), file)}:${line} ${nameOf(fn)}`, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('workflow code size', () => {
  it(`has no function in workflows/ longer than ${MAX_FUNCTION_LINES} lines`, () => {
    const long = workflowFiles(WORKFLOWS)
      .flatMap((f) => functionLengths(f))
      .filter((f) => f.lines > MAX_FUNCTION_LINES)
      .map((f) => `${f.name}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });

  it(`keeps workflows/sandbox.ts under ${MAX_ENTITY_FILE_LINES} lines`, () => {
    const lines = fs.readFileSync(path.join(WORKFLOWS, 'sandbox.ts'), 'utf8').trimEnd().split('\n').length;
    expect(lines).toBeLessThanOrEqual(MAX_ENTITY_FILE_LINES);
  });

  it('counts a function as the parser sees it, so the check can fail', () => {
    const body = Array.from({ length: MAX_FUNCTION_LINES }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const lengths = functionLengths('long.ts', `export async function long() {\n${body}\n}\nconst short = () => 1;\n`);
    expect(lengths.map((f) => [f.name.split(' ')[1], f.lines])).toEqual([
      ['long', MAX_FUNCTION_LINES + 2],
      ['short', 1],
    ]);
  });
});
