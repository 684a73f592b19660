/** Text from users (token names, audit reasons) made safe to print on a terminal: no escapes, no forged lines. */

// C0 controls (tab, newline and carriage return included), DEL and the C1 controls (ESC's 8-bit forms)
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Every control character as a visible escape (`\n`, `\u001b`): one value, one line, no terminal commands. */
export function terminalSafe(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}
