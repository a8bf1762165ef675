// Where the stages' shared marks live (sdk/marks.h). Each stage gets the set
// named by its scope ("pipeline/stage"), so two stages never see each
// other's keys, and the same stage of another replica sees the same set.
// Without [redis], LocalMarkScopes below hands out the sets (a test that
// passes none to build_pipelines() gives every stage an
// sdk::LocalSharedMarks of its own); with it, RedisSharedMarks
// (redis/redis_marks.h) does.
#ifndef SLACK_PROXY_CORE_SHARED_MARKS_H
#define SLACK_PROXY_CORE_SHARED_MARKS_H

#include <slack_proxy/sdk/marks.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace slack_proxy {

class MarkScopes {
 public:
  virtual ~MarkScopes() = default;
  // The set of the stage `scope`. It keeps what holds it alive.
  virtual std::shared_ptr<sdk::SharedMarks> scope(const std::string& scope) = 0;
  // True when the sets live in this process only (no other replica sees
  // them), so any stage may use them.
  virtual bool process_local() const { return false; }
  // Up to `limit` marks of `scope` that hold after `now` (the status page).
  virtual std::vector<std::pair<std::string, sdk::Mark>> list(const std::string& scope,
                                                             sdk::SteadyTime now,
                                                             std::size_t limit) = 0;
};

// The stages' sets in this process, by scope, for the process's life: a
// stage made anew by a reload finds its scope's marks (a deny-list keeps
// its parked channels), and the status page can list them.
class LocalMarkScopes final : public MarkScopes {
 public:
  bool process_local() const override { return true; }
  std::shared_ptr<sdk::SharedMarks> scope(const std::string& scope) override {
    std::lock_guard lock(mutex_);
    auto& set = sets_[scope];
    if (!set) set = std::make_shared<sdk::LocalSharedMarks>();
    return set;
  }
  std::vector<std::pair<std::string, sdk::Mark>> list(const std::string& scope,
                                                     sdk::SteadyTime now,
                                                     std::size_t limit) override {
    std::shared_ptr<sdk::LocalSharedMarks> set;
    {
      std::lock_guard lock(mutex_);
      const auto it = sets_.find(scope);
      if (it == sets_.end()) return {};
      set = it->second;
    }
    return set->list(now, limit);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<sdk::LocalSharedMarks>> sets_;
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_SHARED_MARKS_H
