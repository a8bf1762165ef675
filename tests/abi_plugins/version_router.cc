// A router that sends every message to "#v<ROUTE_VERSION>". Built twice, as
// version_router_v1.so and version_router_v2.so, both calling themselves
// "version_router": a reload test installs one, then the other in its
// place, and sees which one the proxy routes with.
#include <atomic>

#include <slack_proxy/sdk/plugin.h>

#ifndef ROUTE_VERSION
#error "ROUTE_VERSION must say which build this is (1, 2)"
#endif
#define SP_TEXT_OF(x) #x
#define SP_TEXT(x) SP_TEXT_OF(x)

// A function-local static of an inline function with default visibility is
// an STB_GNU_UNIQUE symbol when GCC builds it, as most C++ plugins have
// (from libstdc++): glibc then never unloads the library, even after its
// last dlclose(). The reload test needs that to be true of this plugin too.
__attribute__((visibility("default"))) inline std::atomic<int>& routed_count() {
  static std::atomic<int> n{0};
  return n;
}

namespace {

class VersionRouter final : public slack_proxy::sdk::Router {
 public:
  slack_proxy::sdk::RouteResult route(slack_proxy::sdk::Message& m) noexcept override {
    m.channel = "#v" SP_TEXT(ROUTE_VERSION);
    ++routed_count();
    return slack_proxy::sdk::RouteResult::ok();
  }
};

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&) {
  return std::make_unique<VersionRouter>();
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Router, "version_router",
                                    "test router: every message to one channel, by build",
                                    make)
