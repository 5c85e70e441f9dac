#include "clickpipe/clickhouse/insert.hpp"

#include <utility>

#include "values.hpp"
#include "writes.hpp"

namespace clickpipe::clickhouse {

namespace {

using detail::count_present;
using detail::encode_value;
using detail::insert_prefix;
using detail::key_columns;
using detail::keys_table;
using detail::now_epoch_seconds;

// Undoes COPY text escaping in one field (not \N, handled by the caller).
void unescape_copy(std::string_view v, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\' || i + 1 == v.size()) {
      out += v[i];
      continue;
    }
    switch (const char e = v[++i]) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      default: out += e;
    }
  }
}

}  // namespace

CopyTextEncoder::CopyTextEncoder(TableLayout layout, std::uint64_t version, bool keep_keys)
    : layout_(std::move(layout)), version_(std::to_string(version)), keep_keys_(keep_keys) {
  key_at_ = key_columns(layout_);
  key_.assign(layout_.columns.size(), false);
  if (keep_keys_) {
    for (std::size_t i : key_at_) key_[i] = true;
  }
  tail_ = "\t" + version_ + "\t0\t" + std::to_string(now_epoch_seconds()) + "\n";
}

std::string CopyTextEncoder::insert_sql(const std::string& database) const {
  return insert_prefix(database, layout_);
}

void CopyTextEncoder::add(std::string_view line, std::string& out) {
  const std::size_t start = out.size(), key_start = keys_.size();
  const std::size_t columns = layout_.columns.size();
  std::size_t column = 0, from = 0;
  bool more = true;
  while (more && column < columns) {
    const std::size_t tab = line.find('\t', from);
    more = tab != std::string_view::npos;
    const std::string_view v = line.substr(from, more ? tab - from : std::string_view::npos);
    const MappedColumn& m = layout_.columns[column];
    const std::size_t value_at = out.size();
    if (v == "\\N") {
      encode_value(out, m, Datum::null());  // \N, or [] for an array
    } else if (!detail::append_plain(out, m, v)) {
      unescape_copy(v, field_);
      encode_value(out, m, Datum::of(field_));
    }
    if (key_[column]) {
      keys_.append(out, value_at, out.size() - value_at);
      keys_ += '\t';
    }
    if (more) {
      out += '\t';
      from = tab + 1;
    }
    ++column;
  }
  if (more || column != columns) {  // a field too many, or too few
    out.resize(start);
    keys_.resize(key_start);
    throw InvalidField("row", "a COPY line of " + layout_.name + " does not have " +
                                  std::to_string(columns) + " fields");
  }
  out += tail_;
  if (keep_keys_) {
    keys_ += version_;
    keys_ += '\n';
    ++key_rows_;
  }
}

Reconciliation CopyTextEncoder::reconcile(Client& client) {
  if (!keep_keys_) throw InvalidField("reconcile", "the encoder keeps no keys");
  Reconciliation out;
  out.keys = key_rows_;
  if (key_rows_ > 0) {
    out.landed =
        count_present(client, layout_, key_at_, keys_table(key_at_.size(), std::move(keys_)));
  }
  keys_.clear();
  key_rows_ = 0;
  return out;
}

}  // namespace clickpipe::clickhouse
