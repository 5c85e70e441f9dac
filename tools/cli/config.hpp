// The `clickpipe` command's configuration: one or several pipes, their servers and their store,
// as JSON. The fields are documented in docs/cli.md.
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clickpipe/cluster/pg_store.hpp"
#include "clickpipe/pg_to_clickhouse/executors.hpp"
#include "clickpipe/runtime/pipe.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe::cli {

struct PipeEntry {
  PipeConfig pipe;
  pg_to_clickhouse::Config executors;
};

struct CliConfig {
  std::string store;  // a directory, or the PostgreSQL store's URL (for messages; no password)
  // When "store" names PostgreSQL: the workers share the pipes (docs/scale-out.md).
  std::optional<cluster::PgStoreOptions> pg_store;
  std::vector<PipeEntry> pipes;  // at least one; ids unique
};

// Whether a --store or "store" value names a PostgreSQL store (postgres:// or postgresql://).
bool is_postgres_store(const std::string& store);

// A PostgreSQL store from its URL: refused (InvalidField naming `field`) when the URL carries a
// password (give it in PGPASSWORD, ~/.pgpass or store.password_env instead).
cluster::PgStoreOptions pg_store_options(const std::string& url, const std::string& field);

// "store" is a directory, a postgres:// URL, or {"url", "schema", "lease_ms", "password_env"}.
// Either a single pipe ({"id", "mode", "store", "source", "destination", "tables", "settings"})
// or several ({"store", "source", "destination", "pipes": [{"id", "mode", "tables", "settings",
// and optionally their own "source"/"destination"}, ...]}).
// Throws InvalidField naming the first bad field by its path: unknown keys at any level, wrong
// types, numbers out of range, an unsafe sslmode, a URL carrying user info. No message repeats a
// password or the URL. Passwords given as "password_env" are read from the environment here.
CliConfig parse_config(const nlohmann::json& j);

// Throws InvalidField naming the id given twice (`where` ends the message, e.g. " across the
// config files").
void check_unique_ids(const std::vector<PipeEntry>& pipes, const std::string& where);

// Whether two pipes write the same ClickHouse database: the same database name on the same URL
// (compared without case and trailing slashes).
bool same_destination(const clickhouse::ClientSettings& a, const clickhouse::ClientSettings& b);

// Throws InvalidField naming `field` when `adding`, going to pipe `id`, would land in a
// ClickHouse table that `other` (another pipe on the same database) writes, or in one of the
// names a resync of either gives its copies.
void check_tables_apart(const std::string& id, std::span<const TableRef> adding,
                        const std::string& other, std::span<const TableRef> others_tables,
                        const std::string& field);

// parse_config over a file; a file that is not JSON throws nlohmann::json::exception.
CliConfig read_config(const std::filesystem::path& path);

// "schema.table", or "table" in schema public; throws InvalidField naming `field`.
TableRef table_ref(const std::string& s, const std::string& field);

// The whole file, or "" when it cannot be read.
std::string slurp(const std::filesystem::path& p);

}  // namespace clickpipe::cli
