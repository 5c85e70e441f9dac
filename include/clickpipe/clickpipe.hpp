// The public core of clickpipe. JSON conversions are separate: <clickpipe/json.hpp>.
#pragma once

#include "clickpipe/error.hpp"
#include "clickpipe/format.hpp"
#include "clickpipe/lifecycle/context.hpp"
#include "clickpipe/lifecycle/diagram.hpp"
#include "clickpipe/lifecycle/lifecycle.hpp"
#include "clickpipe/lifecycle/mode.hpp"
#include "clickpipe/lifecycle/state.hpp"
#include "clickpipe/lifecycle/transition_table.hpp"
#include "clickpipe/lifecycle/trigger.hpp"
#include "clickpipe/version.hpp"
