// The two slug rules every layer shares. The patterns are strings so db/ check constraints put the same text
// into their SQL; lib/ reads them as regexes. No imports: db/ loads this file for its schema.

/** Workspace and host ids: lowercase letters, digits and '-', up to 63, starting with a letter or digit. */
export const SLUG_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
/** Snapshot and agent names: the same, and '.' and '_' too. */
export const NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,62}$';

export const SLUG_REGEX = new RegExp(SLUG_PATTERN);
export const NAME_REGEX = new RegExp(NAME_PATTERN);
/** A snapshot name; the same rule as an agent name. */
export const SNAPSHOT_NAME_REGEX = NAME_REGEX;
