// A sink that throws from send() (outside sdk::guarded) for one channel and
// delivers (to nowhere) for every other, so that tests can check the host
// turns the exception into a failed, transient attempt and keeps serving.
#include <slack_proxy/sdk/plugin.h>

#include <stdexcept>

namespace {

class FaultySink final : public slack_proxy::sdk::Sink {
 public:
  slack_proxy::sdk::SendResult send(const slack_proxy::sdk::Message& message) override {
    if (message.channel == "#boom") throw std::runtime_error("faulty_sink exploded on #boom");
    return slack_proxy::sdk::SendResult::ok();
  }
};

std::unique_ptr<slack_proxy::sdk::Sink> make(const slack_proxy::sdk::PluginContext&) {
  return std::make_unique<FaultySink>();
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Sink, "faulty_sink",
                                    "test plugin whose send() throws for #boom", make)
