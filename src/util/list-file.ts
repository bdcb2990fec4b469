/**
 * The lines of a list file given to `--mailboxes` (archive: one address a
 * line; migrate: `source,destination` a line): blank lines and `#` comments
 * left out, each kept line trimmed and numbered as in the file, so a problem
 * can name its line.
 */
export interface ListLine {
  /** 1-based, as an editor shows it. */
  line: number;
  text: string;
}

export function listFileLines(text: string): ListLine[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .flatMap((raw, index) => {
      const kept = raw.replace(/#.*/, '').trim();
      return kept === '' ? [] : [{ line: index + 1, text: kept }];
    });
}
