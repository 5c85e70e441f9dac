// nlohmann::json conversions for the public types. Only the forward declarations of nlohmann are
// pulled in here; the conversions live in the library so that includers stay light.
//
// Reading is strict where a wrong value would do harm and lenient where the spec asks for it:
// an unknown state string reads as State::Unknown (forward compatibility); an unknown mode,
// trigger or field type throws clickpipe::InvalidField naming the field.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "clickpipe/lifecycle/lifecycle.hpp"
#include "clickpipe/lsn.hpp"
#include "clickpipe/settings.hpp"
#include "clickpipe/slot.hpp"
#include "clickpipe/status.hpp"
#include "clickpipe/table.hpp"

namespace clickpipe {

void to_json(nlohmann::json& j, State s);
void from_json(const nlohmann::json& j, State& s);
void to_json(nlohmann::json& j, Mode m);
void from_json(const nlohmann::json& j, Mode& m);
void to_json(nlohmann::json& j, Trigger t);
void from_json(const nlohmann::json& j, Trigger& t);
void to_json(nlohmann::json& j, PauseFor p);
void from_json(const nlohmann::json& j, PauseFor& p);
void to_json(nlohmann::json& j, RejectReason r);
void from_json(const nlohmann::json& j, RejectReason& r);
void to_json(nlohmann::json& j, const LifecycleContext& c);
void from_json(const nlohmann::json& j, LifecycleContext& c);
void to_json(nlohmann::json& j, const Lifecycle& l);
void from_json(const nlohmann::json& j, Lifecycle& l);
void to_json(nlohmann::json& j, const Transition& t);
void from_json(const nlohmann::json& j, Transition& t);
void to_json(nlohmann::json& j, const Rejection& r);
void from_json(const nlohmann::json& j, Rejection& r);
void to_json(nlohmann::json& j, const TriggerSet& s);
void from_json(const nlohmann::json& j, TriggerSet& s);

void to_json(nlohmann::json& j, Lsn lsn);  // "16/B374D848"
void from_json(const nlohmann::json& j, Lsn& lsn);
void to_json(nlohmann::json& j, const RetryPolicy& r);
void from_json(const nlohmann::json& j, RetryPolicy& r);
// Durations are integers in milliseconds ("sync_interval_ms"). Missing fields keep the defaults;
// present fields of the wrong type or out of range throw InvalidField ("settings.<field>").
void to_json(nlohmann::json& j, const Settings& s);
void from_json(const nlohmann::json& j, Settings& s);
void to_json(nlohmann::json& j, const TableRef& t);
void from_json(const nlohmann::json& j, TableRef& t);
void to_json(nlohmann::json& j, const Column& c);
void from_json(const nlohmann::json& j, Column& c);
void to_json(nlohmann::json& j, const TableDefinition& d);
void from_json(const nlohmann::json& j, TableDefinition& d);
void to_json(nlohmann::json& j, const SlotInfo& s);
void from_json(const nlohmann::json& j, SlotInfo& s);
void to_json(nlohmann::json& j, const Partition& p);
void from_json(const nlohmann::json& j, Partition& p);
// Status is written, not read: it is a report.
void to_json(nlohmann::json& j, const PipeStatus& s);

// A service's status, indented by two: {"pipes": [status, ...], "broken": [{"name", "reason"},
// ...]}.
std::string service_status_json(const std::vector<PipeStatus>& pipes,
                                const std::vector<BrokenRecord>& broken);

// The whole transition table as a JSON array of rows (for tooling and the golden-file test).
nlohmann::json transition_table_json();

}  // namespace clickpipe
