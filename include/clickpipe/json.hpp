// nlohmann::json conversions for the public types. Only the forward declarations of nlohmann are
// pulled in here; the conversions live in the library so that includers stay light.
//
// Reading is strict where a wrong value would do harm and lenient where the spec asks for it:
// an unknown state string reads as State::Unknown (forward compatibility); an unknown mode,
// trigger or field type throws clickpipe::InvalidField naming the field.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "clickpipe/lifecycle/lifecycle.hpp"

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
void to_json(nlohmann::json& j, const Context& c);
void from_json(const nlohmann::json& j, Context& c);
void to_json(nlohmann::json& j, const Lifecycle& l);
void from_json(const nlohmann::json& j, Lifecycle& l);
void to_json(nlohmann::json& j, const Transition& t);
void from_json(const nlohmann::json& j, Transition& t);
void to_json(nlohmann::json& j, const Rejection& r);
void from_json(const nlohmann::json& j, Rejection& r);
void to_json(nlohmann::json& j, const TriggerSet& s);
void from_json(const nlohmann::json& j, TriggerSet& s);

// The whole transition table as a JSON array of rows (for tooling and the golden-file test).
nlohmann::json transition_table_json();

}  // namespace clickpipe
