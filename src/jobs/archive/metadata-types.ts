/**
 * The manifest's view of a message, apart from the parsers that fill it, so
 * that metadata.ts and its two header readers share it without importing
 * one another.
 */

export interface MessageAddress {
  name: string;
  address: string;
}

export interface AttachmentInfo {
  filename: string | null;
  contentType: string;
  /** Decoded bytes. */
  size: number;
}

export interface MessageMetadata {
  messageId: string | null;
  /** The Date header as ISO 8601; null when missing or not a date. */
  date: string | null;
  from: MessageAddress[];
  to: MessageAddress[];
  cc: MessageAddress[];
  subject: string | null;
  attachments: AttachmentInfo[];
  /** Why parsing failed; the fields above then hold what was parsed before the failure. */
  parseError?: string;
}
