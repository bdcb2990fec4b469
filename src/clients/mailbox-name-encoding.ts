/**
 * imapflow 2.10 encodes a mailbox name in modified UTF-7 (RFC 3501 5.1.3)
 * only when it holds `&`, a non-ASCII character or a control character other
 * than TAB, LF and CR: those three and DEL go out raw, which servers refuse
 * (Dovecot: "Mailbox name is not valid mUTF-7"). A folder the server lists as
 * `del&AH8-x` could then never be selected again. This encodes what imapflow
 * left raw, in the commands that name one mailbox, on the way to the server.
 */
import type { ImapFlow } from 'imapflow';

type Argument = string | { type?: string; value?: unknown } | unknown[];
type Exec = (command: string, attributes?: Argument[], options?: unknown) => Promise<unknown>;

/** Which argument names the mailbox (LIST: the pattern after the reference). */
const MAILBOX_ARGUMENT: Readonly<Record<string, number>> = {
  SELECT: 0,
  EXAMINE: 0,
  STATUS: 0,
  APPEND: 0,
  CREATE: 0,
  DELETE: 0,
  LIST: 1,
};
const LEFT_RAW = /[\t\n\r\x7f]+/g;
const HAS_LEFT_RAW = /[\t\n\r\x7f]/;

/** Modified BASE64 of each run of the characters imapflow leaves raw. */
export function encodeLeftRaw(name: string): string {
  return name.replace(LEFT_RAW, (run) => {
    const utf16be = Buffer.from(run, 'utf16le').swap16();
    return `&${utf16be.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
  });
}

/** Makes `client` send such names encoded; imapflow's `exec` is where every command passes. */
export function encodeMailboxNamesFully(client: ImapFlow): void {
  const target = client as unknown as { exec: Exec };
  const exec = target.exec.bind(client);
  target.exec = (command, attributes, options) => {
    const at = MAILBOX_ARGUMENT[command.toUpperCase()];
    const argument = at === undefined ? undefined : attributes?.[at];
    // imapflow passes a name as a string (LIST) or as { type, value } (the others).
    const name =
      typeof argument === 'string'
        ? argument
        : argument && !Array.isArray(argument) && typeof argument.value === 'string'
          ? argument.value
          : undefined;
    // A name with `&` or non-ASCII was encoded whole by imapflow: nothing is left raw in it.
    if (at === undefined || name === undefined || !HAS_LEFT_RAW.test(name)) {
      return exec(command, attributes, options);
    }
    const fixed = [...(attributes as Argument[])];
    fixed[at] = { type: 'STRING', value: encodeLeftRaw(name) };
    return exec(command, fixed, options);
  };
}
