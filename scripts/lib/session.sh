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
# Whatever of the run is still in its session when the script has ended
# (which the script should have stopped) is stopped then, and named.
# Services started by scripts/stack have sessions of their own: the scripts
# stop those they started themselves.

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
	# session's and process group's id. Such a child also starts with SIGINT
	# and SIGQUIT ignored, and so would everything it runs (a script or test
	# that expects Ctrl+C to work, further down); env gives them back their
	# default action.
	P7_SESSION_PARENT=$$ env --default-signal=INT,QUIT setsid "$BASH" "$0" "$@" &
	run=$!
	trap 'whole=0' USR1
	# shellcheck disable=SC2016 # expanded when the trap runs
	trap 'if ((whole)); then kill -TERM -- "-$run" 2>/dev/null; else kill -TERM "$run" 2>/dev/null; fi' INT TERM HUP
	wait_out "$run" || status=$?
	stop_session "$run"
	exit "$status"
}

# The live processes of session $1, as "pid name" lines.
session_members() {
	local stat line rest pid state sid
	for stat in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$stat" || continue
		# pid (name) state ppid pgrp session ...; the name may hold spaces.
		rest=${line##*) }
		read -r state _ _ sid _ <<<"$rest"
		[[ $sid == "$1" && $state != Z ]] || continue
		pid=${line%% (*}
		rest=${line#* (}
		echo "$pid ${rest%%) *}"
	done
}

# Stops what is left in session $1: SIGTERM (and SIGCONT, for a frozen
# process), then SIGKILL after 10 s.
stop_session() {
	local left pids i
	left=$(session_members "$1")
	[[ -n $left ]] || return 0
	pids=$(cut -d' ' -f1 <<<"$left" | tr '\n' ' ')
	printf '%s: stopping what the run left running: %s\n' "${0##*/}" "$(tr '\n' ',' <<<"$left" | sed 's/,$//; s/,/, /g')" >&2
	# shellcheck disable=SC2086 # a list of pids
	kill -TERM $pids 2>/dev/null || true
	# shellcheck disable=SC2086
	kill -CONT $pids 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		[[ -n $(session_members "$1") ]] || return 0
		sleep 0.1
	done
	pids=$(session_members "$1" | cut -d' ' -f1 | tr '\n' ' ')
	# shellcheck disable=SC2086
	[[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
}

# From here on a stop request reaches this script alone, as SIGTERM.
signals_to_script_only() {
	if [[ -n ${session_parent:-} ]]; then
		kill -USR1 "$session_parent" 2>/dev/null || true
	fi
}

# Runs a command in the background until it ends, passing each stop request
# this script gets (SIGTERM or SIGINT) on to it as SIGTERM, so it can stop
# what it started in its own order; returns its status.
run_passing_stops() {
	local pid status=0
	"$@" &
	pid=$!
	# shellcheck disable=SC2064 # $pid is fixed here
	trap "kill -TERM $pid 2>/dev/null || true" INT TERM
	wait_out "$pid" || status=$?
	trap - INT TERM
	return "$status"
}

# Waits until child $1 has ended and returns its status. `wait` returns early
# when a trapped signal arrives; bash remembers the status of a child it has
# reaped, so the last `wait` has it either way.
wait_out() {
	while kill -0 "$1" 2>/dev/null; do
		wait "$1" || true
	done
	wait "$1"
}

# Whether any service of the stack runs. A script that finds one running
# leaves the stack up when it ends, even if it had to start the rest: a
# stack that is only partly up (a service that died, a test that stopped
# one) is still someone's, and taking all of it down would pull it from
# under them. Only a stack that was wholly stopped is stopped again.
stack_in_use() {
	local status
	# Captured whole: `grep -q` on a pipe could end `status` by SIGPIPE.
	status=$(scripts/stack status 2>/dev/null) || true
	grep -q '^[^ ]\+ \+running ' <<<"$status"
}
