# shellcheck shell=bash
# Sourced by the scripts users run in a terminal's foreground (pipeline,
# grade, bench, compat, faults).
#
# Ctrl+C in a terminal sends SIGINT to every process of the foreground
# process group at once: the script, the program it is waiting on, and every
# program it started in the background (those ignore SIGINT in a
# non-interactive shell, unless they listen for it, as ours do). Nothing is
# then stopped in order, and under `set -e` the script ends on the first
# child that died of it, before its trap has run.
#
# `own_session "$@"`, called first, runs the script again in a session of its
# own, with no controlling terminal, so no signal from the terminal reaches
# anything it starts. This first process stays in the terminal's group and
# passes each SIGINT, SIGTERM or SIGHUP on as one SIGTERM, then exits with
# the script's status:
#   - to every process of the run while it sets up (install, build, start):
#     those stop at once, and the script's EXIT trap tidies up;
#   - once the script calls `signals_to_script_only`, to the script alone,
#     whose own trap then stops its programs in the order it chooses.
# A script that never calls it is stopped whole, at once, by every signal.

own_session() {
	if [[ -n ${P7_SESSION_PARENT:-} ]]; then
		session_parent=$P7_SESSION_PARENT
		unset P7_SESSION_PARENT
		return
	fi
	# shellcheck disable=SC2034 # whole is read by the traps below
	local run whole=1 status=0
	# A background child of a non-interactive shell is never a process group
	# leader, so setsid does not fork: $! is the script's pid, and its
	# session's and process group's id.
	P7_SESSION_PARENT=$$ setsid "$BASH" "$0" "$@" &
	run=$!
	trap 'whole=0' USR1
	# shellcheck disable=SC2016 # expanded when the trap runs
	trap 'if ((whole)); then kill -TERM -- "-$run" 2>/dev/null; else kill -TERM "$run" 2>/dev/null; fi' INT TERM HUP
	# `wait` returns early when a trapped signal arrives; bash remembers the
	# status of a child it has reaped, so the last `wait` has it either way.
	while kill -0 "$run" 2>/dev/null; do
		wait "$run" || true
	done
	wait "$run" || status=$?
	exit "$status"
}

# From here on a stop request reaches this script alone, as SIGTERM.
signals_to_script_only() {
	if [[ -n ${session_parent:-} ]]; then
		kill -USR1 "$session_parent" 2>/dev/null || true
	fi
}
