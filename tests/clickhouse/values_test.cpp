// Value conversions and version-decided features, without a server.
#include <gtest/gtest.h>

#include "../expect.hpp"
#include "clickpipe/clickhouse/layout.hpp"
#include "clickpipe/clickhouse/tab_separated.hpp"

namespace clickpipe::clickhouse {
namespace {

const ServerVersion kOld{18, 16}, kMid{24, 8}, kNew{26, 7};

MappedColumn mapped(const char* type, ServerVersion v, bool nullable = true, int typmod = -1) {
  return map_column(Column{"c", type, 0, typmod, nullable, 0}, v);
}

TEST(Features, FollowTheServerVersion) {
  const Features old = Features::of(kOld);
  EXPECT_FALSE(old.datetime64);
  EXPECT_FALSE(old.date32);
  EXPECT_FALSE(old.replacing_is_deleted);
  EXPECT_FALSE(old.async_insert);
  // Typed dates and times only where they hold 1900..2299: 21.9's Date32 held 1925..2283.
  EXPECT_FALSE(Features::of({21, 9}).date32);
  EXPECT_FALSE(Features::of({22, 7}).datetime64);
  EXPECT_TRUE(Features::of({22, 8}).date32 && Features::of({22, 8}).datetime64);
  EXPECT_EQ(Features::of({26, 6}).datetime64_years[0], 1900);
  EXPECT_EQ(Features::of({26, 7}).datetime64_years[0], 1);
  EXPECT_EQ(Features::of({26, 7}).datetime64_years[1], 9999);
  EXPECT_EQ(Features::of({26, 7}).date32_years[0], 1900) << "Date32 did not grow";
  EXPECT_FALSE(Features::of({21, 10}).async_insert);
  EXPECT_TRUE(Features::of({21, 11}).async_insert);
  EXPECT_FALSE(Features::of({23, 1}).replacing_is_deleted);
  EXPECT_TRUE(Features::of({23, 2}).replacing_is_deleted);
  const Features now = Features::of(kNew);
  EXPECT_TRUE(now.datetime64 && now.date32 && now.replacing_is_deleted && now.async_insert);

  auto names = [](const Features& f) {
    std::string out;
    for (const Setting& s : f.insert_settings()) out += s.name + "=" + s.value + " ";
    return out;
  };
  EXPECT_EQ(names(old), "input_format_allow_errors_num=0 input_format_allow_errors_ratio=0 ")
      << "18.16 refuses async_insert as an unknown setting";
  EXPECT_EQ(names(Features::of({23, 8})),
            "input_format_allow_errors_num=0 input_format_allow_errors_ratio=0 async_insert=0 ");
  EXPECT_EQ(names(now),
            "input_format_allow_errors_num=0 input_format_allow_errors_ratio=0 async_insert=0 "
            "input_format_tsv_empty_as_default=0 format_tsv_null_representation=\\N "
            "input_format_tsv_skip_trailing_empty_lines=0 "
            "input_format_tsv_allow_variable_number_of_columns=0 ");
}

TEST(Features, DecideTheEngine) {
  const TableDefinition def{
      TableRef{"public", "t"}, {Column{"id", "int8", 0, -1, false, 0}}, {"id"}};
  EXPECT_NE(
      create_table_sql(layout_for(def, "t", kOld), "db").find("ReplacingMergeTree(`_version`)"),
      std::string::npos);
  EXPECT_NE(create_table_sql(layout_for(def, "t", kNew), "db")
                .find("ReplacingMergeTree(`_version`, `_is_deleted`)"),
            std::string::npos);
}

TEST(Values, TimestampsAreReadInAnyOffsetAndWrittenInUtc) {
  for (const ServerVersion v : {kOld, kNew}) {
    for (const char* type : {"timestamptz", "timestamp"}) {
      const MappedColumn m = mapped(type, v);
      EXPECT_EQ(convert_value(m, "2024-01-02 03:04:05+00"), "2024-01-02 03:04:05.000000");
      EXPECT_EQ(convert_value(m, "2024-01-02 03:04:05.5"), "2024-01-02 03:04:05.500000");
      EXPECT_EQ(convert_value(m, "2024-01-02 03:04:05.123456+05:30"), "2024-01-01 21:34:05.123456");
      EXPECT_EQ(convert_value(m, "2024-03-01 02:00:00-03:30"), "2024-03-01 05:30:00.000000");
      EXPECT_EQ(convert_value(m, "2024-03-01 00:10:00+05:45"), "2024-02-29 18:25:00.000000")
          << "back over a leap day";
      EXPECT_EQ(convert_value(m, "2000-01-01 00:00:00+00:00:36"), "1999-12-31 23:59:24.000000")
          << "old local mean time offsets carry seconds";
      EXPECT_EQ(convert_value(m, "2299-12-31 23:59:59.999999+00"), "2299-12-31 23:59:59.999999");
      EXPECT_THROW(convert_value(m, "02.01.2024 03:04:05 IST"), InvalidField)
          << "a DateStyle other than ISO is refused, not guessed";
      EXPECT_THROW(convert_value(m, "2024-01-02 03:04:05.1234567"), InvalidField);
    }
  }
}

TEST(Values, TypedColumnsClampWhatTheirRangeCannotHoldStringColumnsKeepIt) {
  const MappedColumn typed = mapped("timestamptz", kMid), text = mapped("timestamptz", kOld);
  EXPECT_TRUE(typed.bounded);
  EXPECT_FALSE(text.bounded);
  EXPECT_EQ(convert_value(typed, "infinity"), "2299-12-31 23:59:59.999999");
  EXPECT_EQ(convert_value(typed, "-infinity"), "1900-01-01 00:00:00.000000");
  EXPECT_EQ(convert_value(typed, "1899-12-31 23:59:59+00"), "1900-01-01 00:00:00.000000");
  EXPECT_EQ(convert_value(typed, "1900-01-01 03:00:00+05:30"), "1900-01-01 00:00:00.000000")
      << "clamped after the offset is taken off";
  EXPECT_EQ(convert_value(typed, "0044-03-15 12:00:00+00 BC"), "1900-01-01 00:00:00.000000");
  EXPECT_EQ(convert_value(typed, "294276-12-31 23:59:59.999999+00"), "2299-12-31 23:59:59.999999");
  EXPECT_EQ(convert_value(text, "infinity"), "infinity");
  EXPECT_EQ(convert_value(text, "-infinity"), "-infinity");
  EXPECT_EQ(convert_value(text, "0044-03-15 12:00:00+00 BC"), "0044-03-15 12:00:00.000000 BC");
  EXPECT_EQ(convert_value(text, "0001-01-01 02:00:00+05:30 BC"), "0002-12-31 20:30:00.000000 BC")
      << "the offset crosses into the year before, 2 BC";
  EXPECT_EQ(convert_value(text, "294276-12-31 23:59:59.999999+00"), "294276-12-31 23:59:59.999999");

  const MappedColumn wide = mapped("timestamp", kNew);
  EXPECT_EQ(convert_value(wide, "1899-12-31 23:59:59.5"), "1899-12-31 23:59:59.500000")
      << "26.7's DateTime64 holds years 1 to 9999";
  EXPECT_EQ(convert_value(wide, "0044-03-15 12:00:00 BC"), "0001-01-01 00:00:00.000000");
  EXPECT_EQ(convert_value(wide, "10000-01-01 00:00:00"), "9999-12-31 23:59:59.999999");
  EXPECT_EQ(convert_value(wide, "294276-12-31 23:59:59+05:30"), "9999-12-31 23:59:59.999999")
      << "beyond the calendar arithmetic, clamped all the same";

  const MappedColumn date32 = mapped("date", kNew), date = mapped("date", kOld);
  EXPECT_EQ(convert_value(date32, "2024-02-29"), "2024-02-29");
  EXPECT_EQ(convert_value(date32, "1000-01-01"), "1900-01-01");
  EXPECT_EQ(convert_value(date32, "5874897-12-31"), "2299-12-31");
  EXPECT_EQ(convert_value(date32, "infinity"), "2299-12-31");
  EXPECT_EQ(convert_value(date32, "4713-01-01 BC"), "1900-01-01");
  EXPECT_EQ(convert_value(date, "4713-01-01 BC"), "4713-01-01 BC");
  EXPECT_EQ(convert_value(date, "-infinity"), "-infinity");
  EXPECT_THROW(convert_value(date, "29.02.2024"), InvalidField);
}

TEST(Values, ByteaIsReadInHexOrEscapeFormat) {
  const MappedColumn m = mapped("bytea", kNew);
  EXPECT_EQ(convert_value(m, "\\x00ff5c09"), std::string("\\0\xff\\\\\\t", 7))
      << "the bytes, TabSeparated-escaped";
  EXPECT_EQ(convert_value(m, "\\000\\377\\\\ab"), std::string("\\0\xff\\\\ab", 7));
  EXPECT_THROW(convert_value(m, "\\x0g"), InvalidField);
  EXPECT_THROW(convert_value(m, "\\9"), InvalidField);
}

TEST(Values, KeysAreNeverClampedOrReplaced) {
  const int typmod = ((12 << 16) | 3) + 4;
  const TableDefinition def{TableRef{"public", "k"},
                            {Column{"valid_from", "timestamptz", 0, -1, false, 0},
                             Column{"amount", "numeric", 0, typmod, false, 0},
                             Column{"at", "timestamptz", 0, -1, false, 0}},
                            {"valid_from", "amount"}};
  const TableLayout l = layout_for(def, "k", kNew);
  EXPECT_EQ(l.columns[0].type, "String") << "two keys clamped to one would merge";
  EXPECT_EQ(convert_value(l.columns[0], "-infinity"), "-infinity");
  EXPECT_EQ(convert_value(l.columns[0], "1850-01-01 00:00:00+05:30"), "1849-12-31 18:30:00.000000");
  EXPECT_EQ(l.columns[2].type, "DateTime64(6, 'UTC')") << "not a key";
  EXPECT_THROW(convert_value(l.columns[1], "NaN"), InvalidField);
  const auto refused = test::expect_throws<InvalidField>(
      [&] { convert_value(l.columns[0], "secret-ish text that is no timestamp"); });
  ASSERT_TRUE(refused);
  EXPECT_EQ(std::string(refused->what()).find("secret"), std::string::npos) << "no value in errors";
  EXPECT_EQ(refused->field(), "valid_from");
  EXPECT_EQ(map_column(Column{"n", "numeric", 0, ((5 << 16) | 2044) + 4, true, 0}, kNew).type,
            "Nullable(String)")
      << "PostgreSQL 15's negative scale (numeric(5, -4)) is no Decimal";
}

TEST(Values, DecimalsHoldNoNaNOrInfinity) {
  const int typmod = ((12 << 16) | 3) + 4;
  EXPECT_EQ(convert_value(mapped("numeric", kNew, true, typmod), "NaN"), "\\N");
  EXPECT_EQ(convert_value(mapped("numeric", kNew, false, typmod), "-Infinity"), "0");
  EXPECT_EQ(convert_value(mapped("numeric", kNew, true, typmod), "-1.250"), "-1.250");
  EXPECT_EQ(convert_value(mapped("numeric", kNew), "NaN"), "NaN") << "unconstrained: text";
  const MappedColumn arr = map_column(Column{"a", "_numeric", 0, typmod, true, 1}, kNew);
  EXPECT_EQ(convert_value(arr, "{1.5,NaN,NULL}"), "[1.5,NULL,NULL]");
}

TEST(Values, ArraysConvertTheirElements) {
  const MappedColumn ts = map_column(Column{"a", "_timestamptz", 0, -1, true, 1}, kNew);
  EXPECT_EQ(convert_value(ts, "{\"2024-01-02 03:04:05+05:30\",NULL,infinity}"),
            "['2024-01-01 21:34:05.000000',NULL,'9999-12-31 23:59:59.999999']");
  const MappedColumn text = map_column(Column{"a", "_text", 0, -1, true, 1}, kOld);
  EXPECT_EQ(convert_value(text, "{\"tab\there\",\"it's\",\"back\\\\slash\"}"),
            "['tab\\there','it\\'s','back\\\\slash']");
  EXPECT_THROW(convert_value(text, "{\"unterminated\""), InvalidField);
}

}  // namespace
}  // namespace clickpipe::clickhouse
