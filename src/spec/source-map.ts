/** Maps a path in the merged fleet back to file:line:col in the YAML it came from. */
import type { LineCounter } from 'yaml';
import { isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';
import type { SourceLocation } from '../findings/finding.js';

/** One parsed YAML file of a fleet. */
export interface SourceFile {
  /** The path as the user should see it (relative to the working directory when possible). */
  readonly display: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

/** Which file each top-level entry came from: `origin['services']['web']` is a file index. */
export type Origins = Map<string, { file: number; children: Map<string, number> }>;

export class SourceMap {
  constructor(
    readonly files: readonly SourceFile[],
    private readonly origins: Origins,
  ) {}

  /** The file a merged path came from. */
  fileOf(path: readonly PropertyKey[]): number {
    const top = this.origins.get(String(path[0]));
    if (!top) return 0;
    if (path.length > 1) {
      const child = top.children.get(String(path[1]));
      if (child !== undefined) return child;
    }
    return top.file;
  }

  /** Whether the path was written in the YAML (rather than filled in by a schema default). */
  exists(path: readonly PropertyKey[]): boolean {
    const file = this.files[this.fileOf(path)];
    return file ? file.doc.hasIn(path.map((p) => (typeof p === 'number' ? p : String(p)))) : false;
  }

  /**
   * The location of a path: the node itself when it exists, else its nearest ancestor. With `key`, the
   * location of the map key rather than its value (for unknown keys).
   */
  locate(path: readonly PropertyKey[], opts: { key?: boolean } = {}): SourceLocation | undefined {
    const file = this.files[this.fileOf(path)];
    if (!file) return undefined;
    let node: unknown = file.doc.contents;
    let best: Node | undefined = node as Node | undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        const last = i === path.length - 1;
        if (last && opts.key && isScalar(pair.key)) {
          best = pair.key;
          break;
        }
        node = pair.value;
        if (node) best = node as Node;
        else if (isScalar(pair.key)) best = pair.key;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (!item) break;
        node = item;
        best = item as Node;
      } else break;
    }
    const offset = best?.range?.[0] ?? 0;
    const pos = file.lines.linePos(offset);
    return { file: file.display, line: pos.line, col: pos.col };
  }
}
