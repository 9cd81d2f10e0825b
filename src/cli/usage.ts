/** Thrown for a command line that cannot run; exits 2. */
export class UsageError extends Error {}
