/** Stable exit codes of the `meridian` command. */
export const EXIT = {
  ok: 0,
  /** Findings (validate), or a check that did not pass. */
  findings: 1,
  /** Unusable input: a fleet that cannot be loaded, a bad flag, a plan that does not match. */
  input: 2,
  /** The state store or another dependency failed. */
  unavailable: 3,
  /** A bug in Meridian: the stack is printed and a report is asked for. */
  internal: 70,
} as const;
