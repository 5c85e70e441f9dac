// The four executors a pipe runs, named together so adapters and tests need not see the runtime.
#pragma once

#include <memory>

#include "clickpipe/executors/cdc_streamer.hpp"
#include "clickpipe/executors/provisioner.hpp"
#include "clickpipe/executors/snapshot_copier.hpp"
#include "clickpipe/executors/table_setup.hpp"

namespace clickpipe {

struct Executors {
  std::shared_ptr<Provisioner> provisioner;
  std::shared_ptr<TableSetup> table_setup;
  std::shared_ptr<SnapshotCopier> snapshot;
  std::shared_ptr<CdcStreamer> cdc;
};

}  // namespace clickpipe
