/**
 * A real PowerShell grammar for the tests: tree-sitter-powershell's shipped
 * WebAssembly build, loaded with web-tree-sitter. Plus an emulation of the one
 * rule where that grammar and PowerShell differ: PowerShell ends a
 * single-quoted string at any of ' ‘ ’ ‚ ‛, the grammar only at '.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Language, type Node, Parser } from 'web-tree-sitter';

let parserPromise: Promise<Parser> | undefined;

function loadParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    await Parser.init();
    const require = createRequire(import.meta.url);
    const packageDir = dirname(require.resolve('tree-sitter-powershell/package.json'));
    const language = await Language.load(join(packageDir, 'tree-sitter-powershell.wasm'));
    const parser = new Parser();
    parser.setLanguage(language);
    return parser;
  })();
  return parserPromise;
}

export interface CommandCall {
  name: string;
  node: Node;
  /** `-Identity $Mailbox` → Identity: '$Mailbox'; a switch → true; `-Confirm:$false` → Confirm: '$false'. */
  parameters: Record<string, string | true>;
}

export interface ParsedScript {
  source: string;
  root: Node;
  /** ERROR and MISSING nodes. */
  errors: Node[];
  /** Every single-quoted string literal node. */
  verbatimStrings: Node[];
  commands: CommandCall[];
}

export async function parsePowerShell(source: string): Promise<ParsedScript> {
  const parser = await loadParser();
  const tree = parser.parse(source);
  if (!tree) throw new Error('tree-sitter returned no tree');
  const root = tree.rootNode;
  const errors: Node[] = [];
  const verbatimStrings: Node[] = [];
  const commands: CommandCall[] = [];
  walk(root, (node) => {
    if (node.type === 'ERROR' || node.isMissing) errors.push(node);
    if (node.type === 'string_literal' && node.text.startsWith("'")) verbatimStrings.push(node);
    if (node.type === 'command') commands.push(commandCall(node));
  });
  return { source, root, errors, verbatimStrings, commands };
}

export function walk(node: Node, visit: (node: Node) => void): void {
  visit(node);
  for (const child of node.children) walk(child, visit);
}

export function ancestors(node: Node): Node[] {
  const result: Node[] = [];
  for (let n = node.parent; n; n = n.parent) result.push(n);
  return result;
}

function commandCall(node: Node): CommandCall {
  const name = node.childForFieldName('command_name')?.text ?? '';
  const elements = (node.childForFieldName('command_elements')?.namedChildren ?? []).filter(
    (child) => child.type !== 'command_argument_sep',
  );
  const parameters: Record<string, string | true> = {};
  for (let i = 0; i < elements.length; i++) {
    const element = elements[i];
    if (element?.type !== 'command_parameter') continue;
    const raw = element.text.replace(/^-/, '');
    const key = raw.replace(/:$/, '');
    const next = elements[i + 1];
    if (next && next.type !== 'command_parameter') {
      parameters[key] = next.text;
      i++;
    } else {
      parameters[key] = true;
    }
  }
  return { name, node, parameters };
}

/** PowerShell's single-quote characters. */
export const PS_QUOTES = new Set(["'", '\u2018', '\u2019', '\u201A', '\u201B']);

/**
 * Scans a single-quoted string the way PowerShell's tokenizer does: `text`
 * starts at the opening quote; any quote character ends the string unless
 * another quote character follows, in which case the pair stands for the
 * second one. Returns the value and the index just past the closing quote.
 */
export function scanPowerShellVerbatim(text: string): { value: string; end: number } {
  if (!PS_QUOTES.has(text.charAt(0))) throw new Error('not a single-quoted string');
  let value = '';
  for (let i = 1; i < text.length; i++) {
    const char = text.charAt(i);
    if (PS_QUOTES.has(char)) {
      const next = text.charAt(i + 1);
      if (!PS_QUOTES.has(next)) return { value, end: i + 1 };
      value += next;
      i++;
      continue;
    }
    value += char;
  }
  throw new Error('unterminated single-quoted string');
}

/**
 * The value of a single-quoted literal node, decoded with PowerShell's rule,
 * after checking that PowerShell would end the literal exactly where the
 * grammar does.
 */
export function literalValue(node: Node): string {
  const { value, end } = scanPowerShellVerbatim(node.text);
  if (end !== node.text.length) {
    throw new Error(
      `PowerShell would end the literal ${JSON.stringify(node.text)} after ${end} characters, the grammar after ${node.text.length}`,
    );
  }
  return value;
}
