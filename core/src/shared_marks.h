// Where the stages' shared marks live (sdk/marks.h). Each stage gets the set
// named by its scope ("pipeline/stage"), so two stages never see each
// other's keys, and the same stage of another replica sees the same set.
// Without [redis], build_pipelines() gives every stage an
// sdk::LocalSharedMarks of its own; with it, RedisSharedMarks
// (redis/redis_marks.h) hands out the sets.
#ifndef SLACK_PROXY_CORE_SHARED_MARKS_H
#define SLACK_PROXY_CORE_SHARED_MARKS_H

#include <slack_proxy/sdk/marks.h>

#include <memory>
#include <string>

namespace slack_proxy {

class MarkScopes {
 public:
  virtual ~MarkScopes() = default;
  // The set of the stage `scope`. It keeps what holds it alive.
  virtual std::shared_ptr<sdk::SharedMarks> scope(const std::string& scope) = 0;
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_SHARED_MARKS_H
