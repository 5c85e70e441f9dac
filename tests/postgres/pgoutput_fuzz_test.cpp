// The pgoutput decoder and the transaction assembly on a million hostile messages, seeded from a
// stream captured from a real PostgreSQL (tests/data/pgoutput_corpus.hex, written by
// capture_pgoutput_corpus.sh): the captured messages, random bytes, and the captured messages
// mutated (bits flipped, cut, extended, counts and lengths set to 0, -1 or huge, two spliced).
// Each is decoded or refused with FatalError, and what decodes is assembled into transactions,
// with and without a SchemaTracker. No server. In the dev build's AddressSanitizer and
// UndefinedBehaviorSanitizer a read past a message's end fails the run even when the outcome
// looks right.
//
// The corpus: $CLICKPIPE_PGOUTPUT_CORPUS when set, else tests/data/pgoutput_corpus.hex under
// CLICKPIPE_SOURCE_DIR (a compile definition), else under the working directory.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <typeinfo>
#include <variant>
#include <vector>

#include "../expect.hpp"
#include "clickpipe/error.hpp"
#include "clickpipe/postgres/pgoutput.hpp"
#include "clickpipe/postgres/schema_tracker.hpp"
#include "clickpipe/utf8.hpp"

namespace clickpipe::postgres {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::string corpus_path() {
  if (const char* env = std::getenv("CLICKPIPE_PGOUTPUT_CORPUS"); env && *env) return env;
#ifdef CLICKPIPE_SOURCE_DIR
  return std::string(CLICKPIPE_SOURCE_DIR) + "/tests/data/pgoutput_corpus.hex";
#else
  return "tests/data/pgoutput_corpus.hex";
#endif
}

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One message per line, in hex; an unreadable corpus is an empty one (the tests then fail).
std::vector<Bytes> load_corpus() {
  std::ifstream in(corpus_path());
  std::vector<Bytes> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Bytes b;
    for (std::size_t i = 0; i + 1 < line.size(); i += 2) {
      const int hi = nibble(line[i]), lo = nibble(line[i + 1]);
      if (hi < 0 || lo < 0) return {};
      b.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
    }
    out.push_back(std::move(b));
  }
  return out;
}

std::string hex(std::string_view s) {
  std::string out;
  char buf[4];
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) {
      out += c;
    } else {
      std::snprintf(buf, sizeof buf, "\\%02x", u);
      out += buf;
    }
  }
  return out;
}

std::uint32_t be(const Bytes& m, std::size_t at, int width) {
  std::uint32_t v = 0;
  for (int k = 0; k < width; ++k) v = (v << 8) | m[at + static_cast<std::size_t>(k)];
  return v;
}

// Where a well-formed message keeps its counts and lengths (offset, width in bytes): the fields
// a hostile stream would lie in.
struct Field {
  std::size_t at;
  int width;
};
std::vector<Field> count_fields(const Bytes& m) {
  std::vector<Field> out;
  std::size_t i = 1;
  auto str = [&] {
    while (i < m.size() && m[i] != 0) ++i;
    ++i;
  };
  auto tuple = [&] {
    if (i + 2 > m.size()) return;
    out.push_back({i, 2});
    const std::uint32_t n = be(m, i, 2);
    i += 2;
    for (std::uint32_t k = 0; k < n && i < m.size(); ++k) {
      const std::uint8_t kind = m[i++];
      if (kind != 't' && kind != 'b') continue;
      if (i + 4 > m.size()) return;
      out.push_back({i, 4});
      i += 4 + be(m, i, 4);
    }
  };
  switch (m.empty() ? 0 : m[0]) {
    case 'R':
      i += 4;
      str();
      str();
      i += 1;
      if (i + 2 <= m.size()) out.push_back({i, 2});
      break;
    case 'T': out.push_back({1, 4}); break;
    case 'I':
    case 'D':
      i += 5;
      tuple();
      break;
    case 'U':
      i += 4;
      if (i < m.size() && (m[i] == 'K' || m[i] == 'O')) {
        ++i;
        tuple();
      }
      ++i;
      tuple();
      break;
    default: break;
  }
  return out;
}

// All the text a decoded message holds: never more than the bytes it came from.
std::size_t held(const pgoutput::Message& m) {
  std::size_t n = 0;
  auto row = [&](const Values& v) {
    n += v.size();  // each value took at least its kind byte
    for (const Datum& d : v) n += d.text.size();
  };
  if (const auto* o = std::get_if<pgoutput::Origin>(&m)) n += o->name.size();
  if (const auto* r = std::get_if<pgoutput::Relation>(&m)) {
    n += r->table.schema.size() + r->table.name.size();
    for (const auto& c : r->columns) n += c.name.size() + 1;
  }
  if (const auto* t = std::get_if<pgoutput::Type>(&m)) n += t->schema.size() + t->name.size();
  if (const auto* i = std::get_if<pgoutput::Insert>(&m)) row(i->row);
  if (const auto* u = std::get_if<pgoutput::Update>(&m)) {
    row(u->old_row);
    row(u->row);
  }
  if (const auto* d = std::get_if<pgoutput::Delete>(&m)) row(d->old_row);
  if (const auto* t = std::get_if<pgoutput::Truncate>(&m)) n += t->relations.size() * 4;
  return n;
}

// What the captured stream describes, for a SchemaTracker without a server: each relation's
// first description as the pipe's definition, its last as the catalog.
struct Schema {
  std::vector<TableDefinition> definitions;
  std::map<std::uint32_t, std::vector<CatalogColumn>> catalog;

  explicit Schema(const std::vector<pgoutput::Message>& stream) {
    std::set<std::uint32_t> seen;
    for (const auto& m : stream) {
      const auto* r = std::get_if<pgoutput::Relation>(&m);
      if (!r) continue;
      std::vector<CatalogColumn> cols;
      TableDefinition def{r->table, {}, {}, r->id};
      for (std::size_t i = 0; i < r->columns.size(); ++i) {
        const auto& c = r->columns[i];
        const auto attnum = static_cast<std::int32_t>(i + 1);
        const std::string type = "type" + std::to_string(c.type_oid);
        cols.push_back(CatalogColumn{attnum, c.name, type, c.type_oid, c.type_modifier, 0, false,
                                     false, c.key});
        def.columns.push_back(Column{c.name, type, c.type_oid, c.type_modifier, true, 0, attnum});
        if (c.key) def.primary_key.push_back(c.name);
      }
      catalog[r->id] = std::move(cols);
      if (seen.insert(r->id).second) definitions.push_back(std::move(def));
    }
  }
  CatalogLookup lookup() const {
    return [this](std::uint32_t oid) {
      auto it = catalog.find(oid);
      return it == catalog.end() ? std::vector<CatalogColumn>{} : it->second;
    };
  }
};

std::vector<pgoutput::Message> decode_all(const std::vector<Bytes>& corpus) {
  std::vector<pgoutput::Message> out;
  for (const Bytes& b : corpus) out.push_back(pgoutput::decode(b));
  return out;
}

Bytes bytes(std::initializer_list<int> v) {
  Bytes out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

// Regression: an Update whose rows are narrower than its relation was compared column by column
// before its width was checked (a heap over-read on a broken or hostile stream).
TEST(PgOutputFuzz, UpdateWithRowsNarrowerThanItsRelationIsRefusedNotReadPastItsEnd) {
  auto rel = bytes({'R',  0, 0,   0, 7,   'p', 'u', 'b', 'l',  'i',  'c',  0,    't',  0,
                    'd',  0, 2,   1, 'i', 'd', 0,   0,   0,    0,    20,   0xff, 0xff, 0xff,
                    0xff, 0, 'v', 0, 0,   0,   0,   25,  0xff, 0xff, 0xff, 0xff});
  auto begin = bytes({'B', 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9});
  // Old row (id=1, v=a) whole, new row with one value only.
  auto short_new = bytes({'U', 0, 0, 0, 7,   'O', 0, 2, 't', 0, 0, 0, 1, '1', 't',
                          0,   0, 0, 1, 'a', 'N', 0, 1, 't', 0, 0, 0, 1, '2'});
  // Old row with one value only, new row whole.
  auto short_old = bytes({'U', 0, 0,   0, 7, 'O', 0, 1,   't', 0, 0, 0, 1, '1', 'N',
                          0,   2, 't', 0, 0, 0,   1, '2', 't', 0, 0, 0, 1, 'b'});
  auto whole = bytes({'U', 0,   0,   0, 7, 'O', 0, 2, 't', 0, 0,   0,   1, '1', 't', 0, 0,  0,
                      1,   'a', 'N', 0, 2, 't', 0, 0, 0,   1, '2', 't', 0, 0,   0,   1, 'b'});
  for (const auto* msg : {&short_new, &short_old}) {
    pgoutput::Assembler a;
    a.feed(pgoutput::decode(rel));
    a.feed(pgoutput::decode(begin));
    test::expect_throws<FatalError>([&] { a.feed(pgoutput::decode(*msg)); },
                                    "an update narrower than its relation");
  }
  pgoutput::Assembler ok;  // the same update at full width is taken, its key move kept
  ok.feed(pgoutput::decode(rel));
  ok.feed(pgoutput::decode(begin));
  EXPECT_NO_THROW(ok.feed(pgoutput::decode(whole)));
}

TEST(PgOutputFuzz, CapturedStreamAssemblesWholeAndWhatNoServerSendsIsRefusedPrintably) {
  const std::vector<Bytes> corpus = load_corpus();
  ASSERT_GE(corpus.size(), 30u) << "no corpus at " << corpus_path()
                                << " (tests/postgres/capture_pgoutput_corpus.sh writes it)";
  std::set<char> kinds;
  for (const Bytes& b : corpus) kinds.insert(static_cast<char>(b.at(0)));
  EXPECT_EQ(kinds, (std::set<char>{'B', 'C', 'O', 'R', 'Y', 'I', 'U', 'D', 'T'}));

  std::vector<pgoutput::Message> stream;
  ASSERT_NO_THROW(stream = decode_all(corpus));
  // Each captured message is whole: cut short by any amount, or one byte longer, it is refused.
  for (const Bytes& b : corpus) {
    for (std::size_t cut = 0; cut < b.size(); ++cut) {
      EXPECT_THROW(pgoutput::decode({b.data(), cut}), FatalError);
    }
    Bytes longer = b;
    longer.push_back(0);
    EXPECT_THROW(pgoutput::decode(longer), FatalError);
  }

  // What the server never sends is refused in words the status JSON can carry: a name that is not
  // UTF-8 (the connection pins client_encoding), a byte that is no message type.
  for (const Bytes& b : corpus) {
    if (b[0] != 'R') continue;
    Bytes bad_name = b;
    bad_name[5] = 0xFF;  // the first byte of the schema's name
    const auto e = test::expect_throws<FatalError>([&] { pgoutput::decode(bad_name); });
    ASSERT_TRUE(e);
    EXPECT_TRUE(valid_utf8(e->what())) << hex(e->what());
  }
  const Bytes no_type = {0xFF, 0, 0, 0, 0};
  const auto unknown = test::expect_throws<FatalError>([&] { pgoutput::decode(no_type); });
  ASSERT_TRUE(unknown);
  EXPECT_EQ(std::string(unknown->what()), "pgoutput: unknown message type 0xFF");

  const Schema schema(stream);
  SchemaTracker tracker(schema.definitions, schema.lookup());
  pgoutput::Assembler plain, tracked;
  tracked.track(&tracker);
  std::size_t commits = 0, moved_keys = 0, unchanged_toast = 0, nulls = 0, added = 0;
  std::set<std::string> origins, types;
  for (const auto& m : stream) {
    if (const auto* o = std::get_if<pgoutput::Origin>(&m)) origins.insert(o->name);
    if (const auto* t = std::get_if<pgoutput::Type>(&m)) types.insert(t->name);
    if (std::holds_alternative<pgoutput::Commit>(m)) ++commits;
    ASSERT_NO_THROW(plain.feed(m));
    std::optional<pgoutput::Transaction> txn;
    ASSERT_NO_THROW(txn = tracked.feed(m));
    if (!txn) continue;
    for (const auto& sc : txn->schema_changes) {
      added += sc.kind == SchemaChange::Kind::ColumnsAdded ? 1 : 0;
    }
    for (const Change& c : txn->changes) {
      moved_keys += c.old_key.empty() ? 0 : 1;
      for (const Datum& d : c.values) {
        unchanged_toast += d.kind == Datum::Kind::UnchangedToast ? 1 : 0;
        nulls += d.is_null() ? 1 : 0;
      }
    }
  }
  EXPECT_GE(commits, 10u);
  EXPECT_GT(moved_keys, 0u) << "an update that moved its key, with the old key";
  EXPECT_GT(unchanged_toast, 0u) << "an unchanged TOAST value";
  EXPECT_GT(nulls, 0u);
  EXPECT_EQ(added, 1u) << "the column added mid-stream";
  EXPECT_EQ(origins, std::set<std::string>{"h4corpus_origin"});
  EXPECT_EQ(types, std::set<std::string>{"h4corpus_mood"});
}

// Outcomes, by where the message came from.
struct Counts {
  std::uint64_t decoded = 0, refused = 0, assembled = 0, assembly_refused = 0;
};

TEST(PgOutputFuzz, AMillionHostileMessagesAreDecodedOrRefusedNeverMisread) {
  const std::vector<Bytes> seeds = load_corpus();
  ASSERT_GE(seeds.size(), 30u) << "no corpus at " << corpus_path();
  const std::vector<pgoutput::Message> stream = decode_all(seeds);
  std::vector<std::vector<Field>> fields;
  for (const Bytes& s : seeds) fields.push_back(count_fields(s));
  std::vector<pgoutput::Message> relations;
  const pgoutput::Message* begin = nullptr;
  const pgoutput::Message* commit = nullptr;
  for (const auto& m : stream) {
    if (std::holds_alternative<pgoutput::Relation>(m)) relations.push_back(m);
    if (!begin && std::holds_alternative<pgoutput::Begin>(m)) begin = &m;
    if (!commit && std::holds_alternative<pgoutput::Commit>(m)) commit = &m;
  }
  ASSERT_TRUE(begin && commit);
  const Schema schema(stream);

  std::uint64_t bad = 0;  // failures reported (a few, then only counted)
  auto refusal = [&](const FatalError& e, const Bytes& msg) {
    const std::string_view what = e.what();
    if (what.starts_with("pgoutput: ") && valid_utf8(what)) return;
    if (bad++ < 5) {
      ADD_FAILURE() << "a refusal that is not the decoder's, or not UTF-8 (status JSON could not "
                       "carry it): "
                    << hex(what) << " for "
                    << hex({reinterpret_cast<const char*>(msg.data()), msg.size()});
    }
  };

  // The assembly side: the captured relations known and a transaction open, as in a live stream;
  // a commit now and then, and everything built anew from time to time (mutated relations stop
  // tables for good).
  std::unique_ptr<SchemaTracker> tracker;
  pgoutput::Assembler plain, tracked;
  auto feed = [&](const pgoutput::Message& m, Counts& c, const Bytes& msg) {
    for (pgoutput::Assembler* a : {&plain, &tracked}) {
      try {
        a->feed(m);
        ++c.assembled;
      } catch (const FatalError& e) {
        ++c.assembly_refused;
        refusal(e, msg);
      } catch (const std::exception& e) {
        if (bad++ < 5) ADD_FAILURE() << "assembly threw a " << typeid(e).name() << ": " << e.what();
      }
    }
  };
  Counts priming;
  auto reopen = [&](bool anew) {
    if (anew) {
      tracker = std::make_unique<SchemaTracker>(schema.definitions, schema.lookup());
      plain = pgoutput::Assembler();
      tracked = pgoutput::Assembler();
      tracked.track(tracker.get());
    }
    for (pgoutput::Assembler* a : {&plain, &tracked}) {
      try {
        if (a->in_transaction()) a->feed(*commit);
      } catch (const FatalError&) {  // counted where it matters: in the fuzzing loop
      }
    }
    for (const auto& r : relations) feed(r, priming, {});
    feed(*begin, priming, {});
  };
  reopen(true);
  ASSERT_EQ(priming.assembly_refused, 0u);

  std::mt19937_64 rng(0x5EC'2026'1130ULL);
  auto below = [&](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  auto byte = [&] { return static_cast<std::uint8_t>(rng()); };
  constexpr std::string_view tags = "BCORYIUDT";

  enum Source { Seed, Random, Mutated, Spliced };
  const char* names[] = {"captured", "random", "mutated", "spliced"};
  Counts counts[4];
  constexpr std::uint64_t kMessages = 1'000'000;
  Bytes m;
  for (std::uint64_t n = 0; n < kMessages; ++n) {
    Source from = Seed;
    const std::size_t roll = below(100);
    if (n < seeds.size()) {
      from = Seed;  // each captured message once, first
      m = seeds[n];
    } else if (roll < 5) {
      from = Seed;
      m = seeds[below(seeds.size())];
    } else if (roll < 30) {
      from = Random;
      m.resize(below(64));
      for (auto& b : m) b = byte();
      // Mostly a known tag, so the bytes reach the message's own reader.
      if (!m.empty() && below(4) != 0) m[0] = static_cast<std::uint8_t>(tags[below(tags.size())]);
    } else if (roll < 85) {
      from = Mutated;
      const std::size_t which = below(seeds.size());
      m = seeds[which];
      const std::size_t edits = 1 + below(3);
      for (std::size_t e = 0; e < edits; ++e) {
        switch (below(8)) {
          case 0:  // a bit flipped
            if (!m.empty()) m[below(m.size())] ^= static_cast<std::uint8_t>(1u << below(8));
            break;
          case 1:  // a byte changed
            if (!m.empty()) m[below(m.size())] = byte();
            break;
          case 2:  // cut short
            m.resize(below(m.size() + 1));
            break;
          case 3:  // extended
            for (std::size_t k = 1 + below(16); k > 0; --k) m.push_back(byte());
            break;
          case 4:  // bytes inserted inside
            m.insert(m.begin() + static_cast<std::ptrdiff_t>(below(m.size() + 1)), 1 + below(4),
                     byte());
            break;
          case 5: {  // a stretch removed
            if (m.size() < 2) break;
            const std::size_t at = below(m.size());
            const std::size_t len = 1 + below(std::min<std::size_t>(8, m.size() - at));
            m.erase(m.begin() + static_cast<std::ptrdiff_t>(at),
                    m.begin() + static_cast<std::ptrdiff_t>(at + len));
            break;
          }
          default: {  // a count or length lying: 0, 1, -1, huge, one off
            const auto& fs = fields[which];
            if (fs.empty()) break;
            const Field f = fs[below(fs.size())];
            if (f.at + static_cast<std::size_t>(f.width) > m.size()) break;
            const std::uint32_t was = be(m, f.at, f.width);
            const std::uint32_t top = f.width == 2 ? 0xFFFFu : 0xFFFFFFFFu;
            const std::uint32_t lies[] = {0, 1, top, top >> 1, (top >> 1) + 1, was + 1, was - 1};
            const std::uint32_t v = lies[below(std::size(lies))] & top;
            for (int k = 0; k < f.width; ++k) {
              m[f.at + static_cast<std::size_t>(k)] =
                  static_cast<std::uint8_t>(v >> (8 * (f.width - 1 - k)));
            }
            break;
          }
        }
      }
    } else {
      from = Spliced;  // the head of one captured message on the tail of another
      const Bytes& a = seeds[below(seeds.size())];
      const Bytes& b = seeds[below(seeds.size())];
      m.assign(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(below(a.size() + 1)));
      m.insert(m.end(), b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), b.end());
    }

    Counts& c = counts[from];
    try {
      const pgoutput::Message decoded = pgoutput::decode(m);
      ++c.decoded;
      if (held(decoded) > m.size() && bad++ < 5) {
        ADD_FAILURE() << "a message of " << m.size() << " bytes decoded into " << held(decoded);
      }
      feed(decoded, c, m);
    } catch (const FatalError& e) {
      ++c.refused;
      refusal(e, m);
    } catch (const std::exception& e) {
      if (bad++ < 5) ADD_FAILURE() << "decode threw a " << typeid(e).name() << ": " << e.what();
    }
    if (n % 512 == 511) reopen(n % 8192 == 8191);
  }

  Counts total;
  for (int s = 0; s < 4; ++s) {
    std::printf("%-9s decoded %8llu refused %8llu | assembled %8llu refused %8llu\n", names[s],
                static_cast<unsigned long long>(counts[s].decoded),
                static_cast<unsigned long long>(counts[s].refused),
                static_cast<unsigned long long>(counts[s].assembled),
                static_cast<unsigned long long>(counts[s].assembly_refused));
    total.decoded += counts[s].decoded;
    total.refused += counts[s].refused;
    total.assembled += counts[s].assembled;
    total.assembly_refused += counts[s].assembly_refused;
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(total.decoded + total.refused, kMessages) << "every message decoded or refused";
  // Both outcomes, in decoding and in assembly: the hostile bytes reach past the first checks.
  EXPECT_GT(total.decoded, 0u);
  EXPECT_GT(total.refused, 0u);
  EXPECT_GT(total.assembled, 0u);
  EXPECT_GT(total.assembly_refused, 0u);
  EXPECT_GT(counts[Mutated].decoded, 0u) << "mutations that still decode reach the assembly";
  EXPECT_EQ(counts[Seed].refused, 0u) << "a captured message refused";
}

}  // namespace
}  // namespace clickpipe::postgres
