// Placeholder until the admin API lands (see admin_api.h).
#include "admin_api.h"

namespace slack_proxy {

AdminApi::AdminApi(Queue& queue, std::shared_ptr<spdlog::logger> log)
    : queue_(queue), log_(std::move(log)) {}

bool AdminApi::handles(const std::string& path) { return path.rfind("/admin/", 0) == 0; }

HttpReply AdminApi::handle(const std::string&, const std::string&) {
  HttpReply r;
  r.status = 501;
  r.body = R"({"ok":false,"error":"not_implemented"})";
  return r;
}

}  // namespace slack_proxy
