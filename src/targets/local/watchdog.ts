/**
 * The watchdog every local replica runs under: a few lines of POSIX sh, passed to `/bin/sh -c`, so that
 * there is no file to ship and it costs ~1 MB per replica instead of a second Node process.
 *
 * It is started as the leader of its own process group (`detached: true`) with its stdin a pipe from the
 * driver, which never writes to it. It runs the command in the same group and:
 * - exits with the command's status when the command exits (the driver then kills what is left in the group);
 * - on SIGTERM/SIGINT/SIGHUP keeps waiting for the command (which got the same signal, being in the group),
 *   so a graceful shutdown is not cut short;
 * - when the pipe reaches end-of-file — the driver died, even by SIGKILL — sends SIGTERM to the whole group,
 *   waits up to the grace period for the command to exit, then sends SIGKILL to the whole group.
 */

/** The script; `$1` is the grace period in tenths of a second, the rest is the command. */
export const WATCHDOG_SCRIPT = [
  'grace=$1; shift',
  "trap 'meridian_signalled=1' TERM INT HUP",
  'exec 3<&0',
  '"$@" </dev/null 3<&- &',
  'cmd=$!',
  '(',
  "  trap '' TERM INT HUP",
  '  while read -r _line <&3; do :; done',
  '  kill -TERM 0 2>/dev/null',
  '  i=0',
  '  while [ "$i" -lt "$grace" ] && kill -0 "$cmd" 2>/dev/null; do sleep 0.1; i=$((i+1)); done',
  '  kill -KILL 0 2>/dev/null',
  ') &',
  'while :; do',
  '  wait "$cmd"; st=$?',
  '  kill -0 "$cmd" 2>/dev/null || break',
  'done',
  'exit "$st"',
].join('\n');

/** The shell that runs the watchdog. */
export const WATCHDOG_SHELL = '/bin/sh';

/** Arguments for {@link WATCHDOG_SHELL} that run `command` under the watchdog. */
export function watchdogArgs(command: readonly string[], graceMs: number): string[] {
  const tenths = Math.max(1, Math.ceil(graceMs / 100));
  return ['-c', WATCHDOG_SCRIPT, 'meridian-watchdog', String(tenths), ...command];
}
