// file_sink: delivers each message by appending it, as one JSON line, to a
// file. A sink that does not speak HTTP: its failures are local I/O errors.
#pragma once

#include <mutex>
#include <string>

#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace example::file_sink {

namespace sdk = slack_proxy::sdk;

struct Settings {
  std::string path;
  bool fsync = false;
};

inline const sdk::Schema<Settings> kSchema{
    sdk::setting("path", &Settings::path, "file each message is appended to (created 0640)")
        .at_least(1)
        .required(),
    sdk::setting("fsync", &Settings::fsync, "flush each message to the disk before reporting it")
        .default_to("false"),
};

class FileSink final : public sdk::Sink {
 public:
  explicit FileSink(Settings settings);
  // Appends the payload (the host has already written the routed channel
  // into it) as one line. A failure to open or write is outcome::kLocalIo,
  // which retry policies treat as transient.
  sdk::SendResult send(const sdk::Message& message) override;

 private:
  Settings settings_;
  std::mutex mutex_;  // one line at a time: sends run on several workers
};

}  // namespace example::file_sink
