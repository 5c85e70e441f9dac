#include "clickpipe/postgres/pgoutput.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "clickpipe/error.hpp"
#include "clickpipe/postgres/schema_tracker.hpp"
#include "clickpipe/utf8.hpp"
#include "spool.hpp"

namespace clickpipe::postgres::pgoutput {
namespace {

// Big-endian reads that never pass the end.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
  std::uint8_t u8() {
    need(1);
    return b_[at_++];
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(uint(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(uint(4)); }
  std::uint64_t u64() { return uint(8); }
  // A NUL-terminated name. The server sends names in the client encoding, UTF-8 (the connection
  // pins it); anything else is refused, as names end up in messages and status JSON.
  std::string str() {
    std::size_t end = at_;
    while (end < b_.size() && b_[end] != 0) ++end;
    if (end >= b_.size()) throw FatalError("pgoutput: unterminated string");
    std::string s(reinterpret_cast<const char*>(b_.data() + at_), end - at_);
    if (!valid_utf8(s)) throw FatalError("pgoutput: a name that is not UTF-8");
    at_ = end + 1;
    return s;
  }
  std::string bytes(std::size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + at_), n);
    at_ += n;
    return s;
  }
  bool done() const noexcept { return at_ == b_.size(); }
  std::size_t left() const noexcept { return b_.size() - at_; }

 private:
  std::uint64_t uint(int n) {
    need(static_cast<std::size_t>(n));
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | b_[at_++];
    return v;
  }
  void need(std::size_t n) const {
    if (b_.size() - at_ < n) throw FatalError("pgoutput: message cut short");
  }
  std::span<const std::uint8_t> b_;
  std::size_t at_ = 0;
};

// A byte of the stream as a message may show it: printable ASCII quoted, anything else in hex (a
// raw byte could be invalid UTF-8, which the status JSON cannot carry).
std::string shown(std::uint8_t b) {
  if (b >= 0x20 && b < 0x7F) return std::string("'") + static_cast<char>(b) + "'";
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(b));
  return hex;
}

Values tuple(Reader& r) {
  const std::uint16_t n = r.u16();
  Values out;
  // Each column takes at least its kind byte: a count the message cannot hold reserves no more
  // than the message could fill.
  out.reserve(std::min<std::size_t>(n, r.left()));
  for (std::uint16_t i = 0; i < n; ++i) {
    switch (const std::uint8_t kind = r.u8()) {
      case 'n': out.push_back(Datum::null()); break;
      case 'u': out.push_back(Datum::unchanged_toast()); break;
      case 't':
      case 'b': {
        const std::uint32_t len = r.u32();
        out.push_back(Datum::of(r.bytes(len)));
        break;
      }
      default: throw FatalError("pgoutput: unknown tuple column kind " + shown(kind));
    }
  }
  return out;
}

}  // namespace

Message decode(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  const std::uint8_t tag = r.u8();
  Message m;
  switch (tag) {
    case 'B': m = Begin{Lsn{r.u64()}, static_cast<std::int64_t>(r.u64()), r.u32()}; break;
    case 'C': {
      Commit c;
      c.flags = r.u8();
      c.commit_lsn = Lsn{r.u64()};
      c.end_lsn = Lsn{r.u64()};
      c.commit_time = static_cast<std::int64_t>(r.u64());
      m = c;
      break;
    }
    case 'O': {
      Origin o;
      o.commit_lsn = Lsn{r.u64()};
      o.name = r.str();
      m = o;
      break;
    }
    case 'R': {
      Relation rel;
      rel.id = r.u32();
      rel.table.schema = r.str();
      rel.table.name = r.str();
      rel.replica_identity = static_cast<char>(r.u8());
      const std::uint16_t n = r.u16();
      for (std::uint16_t i = 0; i < n; ++i) {
        RelationColumn c;
        c.key = (r.u8() & 1) != 0;
        c.name = r.str();
        c.type_oid = r.u32();
        c.type_modifier = static_cast<std::int32_t>(r.u32());
        rel.columns.push_back(std::move(c));
      }
      m = std::move(rel);
      break;
    }
    case 'Y': {
      Type t;
      t.oid = r.u32();
      t.schema = r.str();
      t.name = r.str();
      m = t;
      break;
    }
    case 'I': {
      Insert ins;
      ins.relation = r.u32();
      if (r.u8() != 'N') throw FatalError("pgoutput: insert without a new tuple");
      ins.row = tuple(r);
      m = std::move(ins);
      break;
    }
    case 'U': {
      Update u;
      u.relation = r.u32();
      char k = static_cast<char>(r.u8());
      if (k == 'K' || k == 'O') {
        u.old_kind = k;
        u.old_row = tuple(r);
        k = static_cast<char>(r.u8());
      }
      if (k != 'N') throw FatalError("pgoutput: update without a new tuple");
      u.row = tuple(r);
      m = std::move(u);
      break;
    }
    case 'D': {
      Delete d;
      d.relation = r.u32();
      d.old_kind = static_cast<char>(r.u8());
      if (d.old_kind != 'K' && d.old_kind != 'O')
        throw FatalError("pgoutput: delete without a key");
      d.old_row = tuple(r);
      m = std::move(d);
      break;
    }
    case 'T': {
      Truncate t;
      const std::uint32_t n = r.u32();
      t.options = r.u8();
      if (n > bytes.size()) throw FatalError("pgoutput: truncate lists too many relations");
      for (std::uint32_t i = 0; i < n; ++i) t.relations.push_back(r.u32());
      m = std::move(t);
      break;
    }
    default: throw FatalError("pgoutput: unknown message type " + shown(tag));
  }
  if (!r.done()) throw FatalError("pgoutput: trailing bytes after " + shown(tag));
  return m;
}

const Relation* Assembler::relation(std::uint32_t id) const {
  auto it = relations_.find(id);
  return it == relations_.end() ? nullptr : &it->second;
}

const Relation& Assembler::need(std::uint32_t id) const {
  const Relation* r = relation(id);
  if (!r)
    throw FatalError("pgoutput: change for relation " + std::to_string(id) +
                     " before its description");
  return *r;
}

std::uint64_t Transaction::size() const {
  return (spilled ? spilled->changes() : 0) + changes.size();
}

std::size_t approximate_bytes(const Change& c) noexcept {
  std::size_t n = sizeof(Change) + c.table.schema.size() + c.table.name.size();
  for (const Values* v : {&c.values, &c.old_key}) {
    n += v->size() * sizeof(Datum);
    for (const Datum& d : *v) n += d.text.size();
  }
  return n;
}

void Assembler::spill_past(std::size_t bytes, std::string dir) {
  spill_bytes_ = bytes;
  spill_dir_ = std::move(dir);
}

void Assembler::add(Change c) {
  if (!open_) throw FatalError("pgoutput: change outside a transaction");
  c.position = position_++;
  current_.bytes += approximate_bytes(c);
  current_.changes.push_back(std::move(c));
  if (spill_bytes_ != 0 && current_.bytes > spill_bytes_) {
    if (!current_.spilled) current_.spilled = std::make_shared<ChangeSpool>(spill_dir_);
    for (const Change& ch : current_.changes) current_.spilled->write(ch);
    std::vector<Change>().swap(current_.changes);  // the memory too, not just the elements
    current_.bytes = 0;
  }
}

std::optional<Transaction> Assembler::feed(const Message& m) {
  auto row = [&](ChangeKind kind, const Relation& rel, Values values, Values old_key) {
    if (values.size() != rel.columns.size()) {
      throw FatalError("pgoutput: " + std::to_string(values.size()) + " values for " +
                       std::to_string(rel.columns.size()) + " columns of " + rel.table.qualified());
    }
    Change c;
    c.kind = kind;
    if (tracker_) {
      auto mapped = tracker_->map(rel.id, std::move(values));
      if (!mapped) return;  // not one of the pipe's tables, or stopped
      c.table = *mapped->table;
      c.values = std::move(mapped->values);
      if (!old_key.empty()) {
        auto old = tracker_->map(rel.id, std::move(old_key));
        if (old) c.old_key = std::move(old->values);
      }
    } else {
      c.table = rel.table;
      c.values = std::move(values);
      c.old_key = std::move(old_key);
    }
    add(std::move(c));
  };
  if (const auto* b = std::get_if<Begin>(&m)) {
    if (open_) throw FatalError("pgoutput: Begin inside a transaction");
    open_ = true;
    current_ = Transaction{};
    current_.commit_lsn = b->final_lsn;
    current_.schema_changes = std::move(pending_schema_);
    pending_schema_.clear();
    position_ = 0;
  } else if (const auto* c = std::get_if<Commit>(&m)) {
    if (!open_) throw FatalError("pgoutput: Commit without Begin");
    open_ = false;
    current_.commit_lsn = c->commit_lsn;
    current_.end_lsn = c->end_lsn;
    current_.commit_time = c->commit_time;
    for (auto& ch : current_.changes) ch.commit_lsn = c->commit_lsn;
    if (current_.spilled) current_.spilled->rewind();
    return std::move(current_);
  } else if (const auto* rel = std::get_if<Relation>(&m)) {
    relations_[rel->id] = *rel;
    if (tracker_) {
      for (auto& sc : tracker_->on_relation(*rel)) {
        (open_ ? current_.schema_changes : pending_schema_).push_back(std::move(sc));
      }
    }
  } else if (const auto* ins = std::get_if<Insert>(&m)) {
    row(ChangeKind::Insert, need(ins->relation), ins->row, {});
  } else if (const auto* up = std::get_if<Update>(&m)) {
    const Relation& rel = need(up->relation);
    Values old_key;
    // Both rows are read by index only once both have the relation's width: a broken or hostile
    // message with fewer values must not be read past its end (row() then refuses it).
    if (up->old_kind != 0 && up->old_row.size() != rel.columns.size()) {
      // Dropping the old key would leave the row under its previous key at the destination.
      throw FatalError("pgoutput: an update's old row has " + std::to_string(up->old_row.size()) +
                       " values, its relation " + std::to_string(rel.columns.size()));
    }
    if (up->old_kind != 0 && up->row.size() == rel.columns.size()) {
      // The key moved when an old key column differs from the new row's.
      for (std::size_t i = 0; i < rel.columns.size(); ++i) {
        if (rel.columns[i].key && !(up->old_row[i] == up->row[i])) {
          old_key = up->old_row;
          break;
        }
      }
    }
    row(ChangeKind::Update, rel, up->row, std::move(old_key));
  } else if (const auto* del = std::get_if<Delete>(&m)) {
    row(ChangeKind::Delete, need(del->relation), del->old_row, {});
  } else if (const auto* tr = std::get_if<Truncate>(&m)) {
    for (auto id : tr->relations) {
      const Relation& rel = need(id);
      Change c;
      c.kind = ChangeKind::Truncate;
      if (tracker_) {
        const TableRef* t = tracker_->table(id);
        if (!t) continue;
        c.table = *t;
      } else {
        c.table = rel.table;
      }
      add(std::move(c));
    }
  }
  // Origin and Type carry nothing a change needs.
  return std::nullopt;
}

}  // namespace clickpipe::postgres::pgoutput
