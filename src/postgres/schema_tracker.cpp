#include "clickpipe/postgres/schema_tracker.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "clickpipe/error.hpp"

namespace clickpipe::postgres {
namespace {

bool in_key(const TableDefinition& d, const std::string& column) {
  return std::find(d.primary_key.begin(), d.primary_key.end(), column) != d.primary_key.end();
}

}  // namespace

SchemaTracker::SchemaTracker(std::span<const TableDefinition> tables, CatalogLookup lookup)
    : lookup_(std::move(lookup)) {
  for (const auto& def : tables) {
    if (def.oid != 0) by_oid_[def.oid] = held_.size();
    held_.push_back(Held{def, {}, false, false});
  }
}

SchemaTracker::Held* SchemaTracker::find(std::uint32_t id) {
  auto it = by_oid_.find(id);
  return it == by_oid_.end() ? nullptr : &held_[it->second];
}
const SchemaTracker::Held* SchemaTracker::find(std::uint32_t id) const {
  return const_cast<SchemaTracker*>(this)->find(id);
}

std::vector<TableDefinition> SchemaTracker::definitions() const {
  std::vector<TableDefinition> out;
  for (const auto& h : held_) out.push_back(h.def);
  return out;
}

const TableRef* SchemaTracker::table(std::uint32_t id) const {
  const Held* h = find(id);
  return h && !h->stopped ? &h->def.table : nullptr;
}

std::optional<SchemaTracker::Row> SchemaTracker::map(std::uint32_t id, Values row) const {
  const Held* h = find(id);
  if (!h || h->stopped) return std::nullopt;
  if (!h->described || row.size() != h->index.size()) {
    throw FatalError("pgoutput: a row of " + h->def.table.qualified() + " with " +
                     std::to_string(row.size()) + " values does not match its description");
  }
  Row out{&h->def.table, Values(h->def.columns.size())};
  for (std::size_t i = 0; i < row.size(); ++i) out.values[h->index[i]] = std::move(row[i]);
  return out;
}

std::vector<SchemaChange> SchemaTracker::on_relation(const pgoutput::Relation& rel) {
  Held* h = find(rel.id);
  if (!h) {
    for (auto& other : held_) {
      if (other.def.table != rel.table || other.stopped) continue;
      if (other.def.oid == 0) {
        other.def.oid = rel.id;  // a definition saved before OIDs were kept: adopt it by name
        by_oid_[rel.id] = static_cast<std::size_t>(&other - held_.data());
        h = &other;
        break;
      }
      // Same name, another relation: the table was dropped and created again (or another one
      // renamed into its name). Its rows would mix with the old table's.
      other.stopped = true;
      return {SchemaChange{SchemaChange::Kind::TableStopped, other.def.table, other.def,
                           "table " + other.def.table.qualified() +
                               " is a different table now (relation OID " +
                               std::to_string(other.def.oid) + " became " + std::to_string(rel.id) +
                               "): it was dropped and created again. Its changes are no longer "
                               "applied; resync the pipe to reload it"}};
    }
    if (!h) return {};  // not one of the pipe's tables
  }
  if (h->stopped) return {};
  return compare(*h, rel);
}

std::vector<SchemaChange> SchemaTracker::compare(Held& h, const pgoutput::Relation& rel) {
  const TableDefinition& def = h.def;
  const std::string name = def.table.qualified();
  // Replica identity DEFAULT flags exactly the primary key's columns; FULL flags all of them.
  const bool key_flags = rel.replica_identity == 'd';
  std::vector<std::size_t> active;
  for (std::size_t j = 0; j < def.columns.size(); ++j) {
    if (!def.columns[j].dropped) active.push_back(j);
  }
  // The common case: nothing changed since the definition was read. (With FULL every column is
  // flagged, so the key is checked against the catalog below.)
  if (key_flags && rel.table == def.table && rel.columns.size() == active.size()) {
    bool same = true;
    for (std::size_t i = 0; i < active.size() && same; ++i) {
      const Column& c = def.columns[active[i]];
      const auto& r = rel.columns[i];
      same = r.name == c.name && r.type_oid == c.type_oid && r.type_modifier == c.type_modifier &&
             (!key_flags || r.key == in_key(def, c.name));
    }
    if (same) {
      h.index = active;
      h.described = true;
      return {};
    }
  }

  std::vector<std::string> problems;
  if (rel.table != def.table) {
    problems.push_back("the table was renamed to " + rel.table.qualified());
  }
  if (rel.replica_identity == 'i' || rel.replica_identity == 'n') {
    // Deletes would carry another key, or none.
    problems.push_back(std::string("its replica identity became ") +
                       (rel.replica_identity == 'i' ? "USING INDEX" : "NOTHING"));
  }
  const std::vector<CatalogColumn> catalog = lookup_(rel.id);
  auto by_attnum = [&](std::int32_t n) -> const CatalogColumn* {
    for (const auto& c : catalog) {
      if (c.attnum == n) return &c;
    }
    return nullptr;
  };
  auto by_name = [&](const std::string& n) -> const CatalogColumn* {
    for (const auto& c : catalog) {
      if (!c.dropped && c.name == n) return &c;
    }
    return nullptr;
  };
  TableDefinition next = def;
  std::vector<std::string> dropped, added;
  for (std::size_t j : active) {
    Column& c = next.columns[j];
    const CatalogColumn* now = c.attnum != 0 ? by_attnum(c.attnum) : by_name(c.name);
    if (!now || now->dropped) {
      if (in_key(def, c.name)) {
        problems.push_back("key column " + c.name + " was dropped");
      } else {
        c.dropped = true;
        dropped.push_back(c.name);
      }
    } else if (now->name != c.name) {
      problems.push_back("column " + c.name + " was renamed to " + now->name);
    } else if (now->type_oid != c.type_oid || now->type_modifier != c.type_modifier) {
      problems.push_back(
          "column " + c.name + " changed type from " + c.type +
          (c.type_modifier >= 0 ? "(typmod " + std::to_string(c.type_modifier) + ")" : "") +
          " to " + now->type +
          (now->type_modifier >= 0 ? "(typmod " + std::to_string(now->type_modifier) + ")" : ""));
    }
  }
  std::vector<std::size_t> index(rel.columns.size());
  std::vector<std::string> key_now;
  for (std::size_t i = 0; i < rel.columns.size(); ++i) {
    const auto& r = rel.columns[i];
    if (r.key) key_now.push_back(r.name);
    auto it = std::find_if(next.columns.begin(), next.columns.end(),
                           [&](const Column& c) { return c.name == r.name; });
    if (it != next.columns.end() && !it->dropped) {
      if (r.type_oid != it->type_oid || r.type_modifier != it->type_modifier) {
        // Seen in the message though the catalog moved on: refuse all the same.
        if (problems.empty()) problems.push_back("column " + r.name + " changed type");
      }
      index[i] = static_cast<std::size_t>(it - next.columns.begin());
      continue;
    }
    if (it != next.columns.end()) {
      problems.push_back("column " + r.name + " was dropped and added again");
      continue;
    }
    const CatalogColumn* now = by_name(r.name);
    if (!now || now->type_oid != r.type_oid) {
      problems.push_back("column " + r.name + " changed again while the pipe read it");
      continue;
    }
    Column c;
    c.name = r.name;
    c.type = now->type;
    c.type_oid = r.type_oid;
    c.type_modifier = r.type_modifier;
    c.nullable = true;  // rows written before it have no value for it
    c.array_dimensions = now->array_dimensions;
    c.attnum = now->attnum;
    next.columns.push_back(std::move(c));
    index[i] = next.columns.size() - 1;
    added.push_back(r.name + " " + now->type);
  }
  if (!key_flags) {
    key_now.clear();
    for (const auto& c : catalog) {
      if (c.key && !c.dropped) key_now.push_back(c.name);
    }
  }
  if (rel.replica_identity == 'd' || rel.replica_identity == 'f') {
    std::vector<std::string> key_held = def.primary_key;
    std::sort(key_held.begin(), key_held.end());
    std::sort(key_now.begin(), key_now.end());
    if (key_held != key_now) {
      problems.push_back(fmt::format("the primary key changed from ({}) to ({})",
                                     fmt::join(def.primary_key, ", "), fmt::join(key_now, ", ")));
    }
  }
  for (std::size_t j = 0; j < next.columns.size(); ++j) {
    const Column& c = next.columns[j];
    if (c.dropped) continue;
    if (std::find(index.begin(), index.end(), j) == index.end()) {
      problems.push_back("column " + c.name + " is no longer published");
    }
  }

  if (!problems.empty()) {
    h.stopped = true;
    return {SchemaChange{SchemaChange::Kind::TableStopped, def.table, def,
                         fmt::format("table {}: {}. Its changes are no longer applied (the rest "
                                     "of the pipe goes on); resync the pipe to reload it with "
                                     "the new definition",
                                     name, fmt::join(problems, "; "))}};
  }
  std::vector<SchemaChange> out;
  if (!dropped.empty()) {
    out.push_back(SchemaChange{SchemaChange::Kind::ColumnsDropped, def.table, next,
                               fmt::format("table {}: column(s) dropped at the source: {} (kept "
                                           "in ClickHouse, NULL or the default from now on)",
                                           name, fmt::join(dropped, ", "))});
  }
  if (!added.empty()) {
    out.push_back(SchemaChange{SchemaChange::Kind::ColumnsAdded, def.table, next,
                               fmt::format("table {}: column(s) added: {} (Nullable in ClickHouse; "
                                           "earlier rows read NULL)",
                                           name, fmt::join(added, ", "))});
  }
  h.def = std::move(next);
  h.index = std::move(index);
  h.described = true;
  return out;
}

}  // namespace clickpipe::postgres
