#include "clickpipe/store/state_store.hpp"

namespace clickpipe {

std::string_view to_string(StoreErrorCode code) noexcept {
  switch (code) {
    case StoreErrorCode::Unavailable: return "unavailable";
    case StoreErrorCode::Failed: return "failed";
    case StoreErrorCode::Corrupt: return "corrupt";
    case StoreErrorCode::AlreadyExists: return "already_exists";
    case StoreErrorCode::NotFound: return "not_found";
    case StoreErrorCode::Locked: return "locked";
    case StoreErrorCode::Refused: return "refused";
    case StoreErrorCode::Fenced: return "fenced";
  }
  return "unavailable";
}

}  // namespace clickpipe
