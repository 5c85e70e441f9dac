# shellcheck shell=bash
# Sourced by the command-line tests: drop_leftovers ID drops what pipes named ID_* left on the
# test servers (inactive replication slots, publications, ClickHouse tables). The caller defines
# pg SQL and ch SQL (each prints the result), and has stopped its clickpipe processes.
drop_leftovers() {
  local id="$1" p t names=""
  for _ in 1 2 3 4 5; do
    pg "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
          WHERE slot_name LIKE 'clickpipe\\_${id}\\_%' AND NOT active" > /dev/null 2>&1
    [ "$(pg "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'clickpipe\\_${id}\\_%'" 2> /dev/null)" = 0 ] && break
    sleep 0.5
  done
  for p in $(pg "SELECT pubname FROM pg_publication WHERE pubname LIKE 'clickpipe\\_${id}\\_%'" 2> /dev/null); do
    pg "DROP PUBLICATION IF EXISTS $p" > /dev/null 2>&1
  done
  # 18.16 fails a read of system.tables while another test drops a table: asked again.
  for _ in 1 2 3 4 5; do
    names=$(ch "SELECT name FROM system.tables WHERE database = 'default' AND startsWith(name, '${id}_')" 2> /dev/null) && break
  done
  for t in $names; do
    ch "DROP TABLE IF EXISTS default.\`$t\`" > /dev/null 2>&1
  done
}
