// Imports nothing, so the CLI can parse its number options without loading the rest of validation.

/** A CLI number argument: digits only, or NaN for the client to refuse (parseInt would read "14d; rm -rf /" as 14). */
export const wholeNumber = (v: string): number => (/^\d{1,15}$/.test(v) ? Number(v) : Number.NaN);
