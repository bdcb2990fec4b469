/**
 * libmime and mailsplit as mailparser itself loads them: resolved from
 * mailparser's own folder, so the archive reads headers with the very
 * modules MailParser reads them with (outline-metadata.ts must describe a
 * message exactly as MailParser would). mailparser pins both to exact
 * versions; a copy of our own beside them would be whatever an install
 * happens to hoist, and could read a header differently.
 *
 * mailsplit is CommonJS only, so this is the module instance mailparser
 * uses. libmime ships CommonJS and ESM builds of the same source; Node
 * offers no ESM resolution from another module's folder, so this is the
 * CommonJS build from the package mailparser imports.
 */
import { createRequire } from 'node:module';

type Libmime = typeof import('libmime', { with: { 'resolution-mode': 'require' }});
type Mailsplit = typeof import('@zone-eu/mailsplit', { with: { 'resolution-mode': 'require' }});

const requireFromMailparser = createRequire(createRequire(import.meta.url).resolve('mailparser'));

export const libmime = requireFromMailparser('libmime') as Libmime;
export const { MimeNode } = requireFromMailparser('@zone-eu/mailsplit') as Mailsplit;
export type MimeNode = InstanceType<typeof MimeNode>;
