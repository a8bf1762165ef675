#include "file_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace example::file_sink {
namespace {

// Writes all of `text`, or returns the errno that stopped it.
int write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

FileSink::FileSink(Settings settings) : settings_(std::move(settings)) {}

sdk::SendResult FileSink::send(const sdk::Message& message) {
  // JSON allows raw newlines only between tokens, so turning them into
  // spaces keeps the payload valid and the file one message per line.
  std::string line = message.payload;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  line.push_back('\n');

  std::lock_guard<std::mutex> lock(mutex_);
  // Opened per message, so a rotated or removed file is simply recreated.
  const int fd = ::open(settings_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return sdk::SendResult::failure(sdk::outcome::kLocalIo,
                                    "cannot open " + settings_.path + ": " + std::strerror(errno));
  }
  int error = write_all(fd, line);
  if (error == 0 && settings_.fsync && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    return sdk::SendResult::failure(sdk::outcome::kLocalIo,
                                    "cannot write " + settings_.path + ": " + std::strerror(error));
  }
  return sdk::SendResult::ok(0);
}

}  // namespace example::file_sink
