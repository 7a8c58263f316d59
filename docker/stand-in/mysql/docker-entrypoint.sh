#!/usr/bin/env bash
# The entrypoint of CI's MariaDB stand-in for mysql:8.4 (see Dockerfile):
# on an empty data directory, initialise it, set root's password for every
# host, create MYSQL_DATABASE and run /docker-entrypoint-initdb.d/*.sql in it,
# all on a server that listens on no port; then start the server for real.
set -euo pipefail

data=/var/lib/mysql
server=("$@")
[[ ${#server[@]} -gt 0 ]] || server=(mariadbd)
# shellcheck disable=SC1090 # the image's own init scripts, sourced as the official entrypoint does
run_script() { . "$1"; }
log() { printf '%s [Entrypoint]: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

if [[ ! -d $data/mysql ]]; then
	if [[ -z ${MYSQL_ROOT_PASSWORD:-} ]]; then
		log "MYSQL_ROOT_PASSWORD is not set; the database is uninitialised and the server will not start"
		exit 1
	fi
	log "initialising $data"
	mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=normal \
		--skip-test-db >/dev/null
	mariadbd --user=mysql --datadir="$data" --skip-networking --socket=/run/mysqld/init.sock &
	pid=$!
	client=(mariadb --protocol=socket --socket=/run/mysqld/init.sock -uroot)
	for _ in $(seq 60); do
		"${client[@]}" -e 'SELECT 1' >/dev/null 2>&1 && break
		sleep 0.5
	done
	password=${MYSQL_ROOT_PASSWORD//\'/\'\'}
	"${client[@]}" <<-SQL
		ALTER USER 'root'@'localhost' IDENTIFIED BY '$password';
		CREATE USER 'root'@'%' IDENTIFIED BY '$password';
		-- mariadb-install-db also makes root@127.0.0.1, root@::1 and root@<hostname>
		-- without a password; they would match before root@'%'.
		DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '%');
		GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
		FLUSH PRIVILEGES;
	SQL
	client+=("-p$MYSQL_ROOT_PASSWORD")
	database=()
	if [[ -n ${MYSQL_DATABASE:-} ]]; then
		"${client[@]}" -e "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`"
		database=("$MYSQL_DATABASE")
	fi
	for script in /docker-entrypoint-initdb.d/*; do
		case $script in
		*.sql) log "running $script" && "${client[@]}" "${database[@]}" <"$script" ;;
		*.sh) log "running $script" && run_script "$script" ;;
		*) ;;
		esac
	done
	kill "$pid"
	wait "$pid" || true
	log "initialised; starting the server"
fi
exec "${server[@]}" --user=mysql --datadir="$data" --bind-address=0.0.0.0 --port=3306 --skip-name-resolve
