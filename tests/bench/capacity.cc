// capacity-bench: how promptly an HTTP server answers one ordinary caller
// while it holds thousands of idle keep-alive connections and many clients
// that trickle a request head and never finish it, and what each idle
// connection costs it in memory. Used by scripts/bench.sh against
// slack-proxy and nginx alike (it knows nothing about either).
//
// In order:
//   1. baseline: sequential POSTs on one keep-alive connection, nothing else open;
//   2. the RSS of --rss-pid (summed, when given several: nginx's workers);
//   3. --idle connections each make one request (GET /health by default, so
//      that nothing is queued), read the reply, then stay open and idle;
//   4. the RSS again, and the growth per idle connection still open;
//   5. --trickle connections send a request head a few bytes at a time and
//      never end it (slowloris);
//   6. loaded: the same sequential POSTs as the baseline, --probes of them or
//      for --probe-seconds, whichever ends first;
//   7. how many idle and trickling connections the server kept open, the RSS.
//
// Every socket is non-blocking and every wait has a deadline, so a server
// that stalls shows as "timed_out" counts, never as a hung bench; a watchdog
// ends the process after --deadline-seconds whatever happens. Each figure is
// one line, "<record> key=value ...", which scripts/bench.sh reads.
// Exit status: 0 measured (whatever the figures), 2 bad usage or setup,
// 3 the watchdog fired.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::duration<double, std::milli>;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/";
  std::string body = R"({"channel":"#bench","text":"capacity probe"})";
  int idle = 10'000;
  bool idle_post = false;  // the idle connections' one request: GET /health or the POST
  int trickle = 1'000;
  int trickle_bytes = 3;
  int trickle_interval_ms = 500;
  int baseline_probes = 200;
  int probes = 2'000;
  double probe_interval_ms = 5;  // from one POST's start to the next's, unless it took longer
  double probe_seconds = 30;
  int probe_timeout_ms = 2'000;
  double open_seconds = 30;  // to open (and get answered) all idle, then all trickle
  int connect_batch = 128;   // connects in flight at once, under a listen backlog
  double deadline_seconds = 240;
  std::vector<int> rss_pids;
};

void usage(std::ostream& out) {
  out << R"(usage: capacity-bench --port P [options]
  --host H                   IPv4 address of the server (127.0.0.1)
  --path P                   the probes' POST target (/)
  --body JSON                the probes' POST body (a small chat.postMessage)
  --idle N                   idle keep-alive connections (10000)
  --idle-post                their one request is the probe's POST (default GET /health)
  --trickle N                clients trickling a request head (1000)
  --trickle-bytes B          bytes per send (3)
  --trickle-interval-ms MS   between sends on each connection (500)
  --baseline-probes N        POSTs before anything else is open (200)
  --probes N                 POSTs under load (2000) ...
  --probe-seconds S          ... or for this long, whichever ends first (30)
  --probe-interval-ms MS     one POST starts this long after the previous one (5),
                             so that the load lasts while the crowd trickles
  --probe-timeout-ms MS      a POST without a reply by then is timed out (2000)
  --open-seconds S           deadline to open the idle, then the trickling, connections (30)
  --connect-batch N          connection attempts in flight at once (128)
  --deadline-seconds S       the whole run; past it the process exits 3 (240)
  --rss-pid PID              read VmRSS of this process (repeatable: summed)
)";
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  const std::map<std::string, std::function<void(const std::string&)>> valued = {
      {"--host", [&](const std::string& v) { o.host = v; }},
      {"--port", [&](const std::string& v) { o.port = std::stoi(v); }},
      {"--path", [&](const std::string& v) { o.path = v; }},
      {"--body", [&](const std::string& v) { o.body = v; }},
      {"--idle", [&](const std::string& v) { o.idle = std::stoi(v); }},
      {"--trickle", [&](const std::string& v) { o.trickle = std::stoi(v); }},
      {"--trickle-bytes", [&](const std::string& v) { o.trickle_bytes = std::stoi(v); }},
      {"--trickle-interval-ms", [&](const std::string& v) { o.trickle_interval_ms = std::stoi(v); }},
      {"--baseline-probes", [&](const std::string& v) { o.baseline_probes = std::stoi(v); }},
      {"--probes", [&](const std::string& v) { o.probes = std::stoi(v); }},
      {"--probe-seconds", [&](const std::string& v) { o.probe_seconds = std::stod(v); }},
      {"--probe-interval-ms", [&](const std::string& v) { o.probe_interval_ms = std::stod(v); }},
      {"--probe-timeout-ms", [&](const std::string& v) { o.probe_timeout_ms = std::stoi(v); }},
      {"--open-seconds", [&](const std::string& v) { o.open_seconds = std::stod(v); }},
      {"--connect-batch", [&](const std::string& v) { o.connect_batch = std::stoi(v); }},
      {"--deadline-seconds", [&](const std::string& v) { o.deadline_seconds = std::stod(v); }},
      {"--rss-pid", [&](const std::string& v) { o.rss_pids.push_back(std::stoi(v)); }},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "--help") {
      usage(std::cout);
      std::exit(0);
    }
    if (name == "--idle-post") {
      o.idle_post = true;
      continue;
    }
    const auto it = valued.find(name);
    if (it == valued.end() || i + 1 >= argc) {
      std::cerr << "capacity-bench: unknown option or missing value: " << name << "\n";
      usage(std::cerr);
      return std::nullopt;
    }
    try {
      it->second(argv[++i]);
    } catch (const std::exception&) {
      std::cerr << "capacity-bench: bad value for " << name << ": " << argv[i] << "\n";
      return std::nullopt;
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.idle < 0 || o.trickle < 0 || o.trickle_bytes < 1 ||
      o.trickle_interval_ms < 1 || o.connect_batch < 1 || o.probe_timeout_ms < 1 ||
      o.probe_interval_ms < 0) {
    usage(std::cerr);
    return std::nullopt;
  }
  return o;
}

// --- the wire -----------------------------------------------------------------

std::string post_request(const Options& o) {
  return "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(o.body.size()) +
         "\r\n\r\n" + o.body;
}

std::string health_request(const Options& o) {
  return "GET /health HTTP/1.1\r\nHost: " + o.host + "\r\n\r\n";
}

// A head that never ends: after these headers, one more whose value grows
// forever, so the blank line that would complete it never comes.
std::string trickle_prefix(const Options& o) {
  return "POST " + o.path + " HTTP/1.1\r\nHost: " + o.host +
         "\r\nContent-Type: application/json\r\nX-Trickle: ";
}

struct Framed {
  int status = 0;
  std::size_t length = 0;  // head and body
  bool close = false;      // the server said Connection: close
};

// The first response in `bytes` once it is complete (framed by
// Content-Length, as both servers measured here frame theirs), nullopt until
// then; throws on bytes that are not an HTTP/1.x response.
std::optional<Framed> frame_response(std::string_view bytes) {
  const auto head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return std::nullopt;
  if (head_end < 12 || !bytes.starts_with("HTTP/1.")) throw std::runtime_error("not HTTP");
  std::string head(bytes.substr(0, head_end));
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  Framed f;
  f.status = std::atoi(head.c_str() + 9);
  std::size_t body = 0;
  if (const auto at = head.find("\r\ncontent-length:"); at != std::string::npos) {
    body = std::strtoul(head.c_str() + at + 17, nullptr, 10);
  }
  f.close = head.find("\r\nconnection: close") != std::string::npos;
  f.length = head_end + 4 + body;
  if (bytes.size() < f.length) return std::nullopt;
  return f;
}

sockaddr_in server_address(const Options& o) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &a.sin_addr) != 1) {
    throw std::invalid_argument("--host must be an IPv4 address: " + o.host);
  }
  return a;
}

// A non-blocking connection attempt; -1 when it failed at once.
int start_connect(const sockaddr_in& to) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 0 ||
      errno == EINPROGRESS) {
    return fd;
  }
  ::close(fd);
  return -1;
}

bool connect_succeeded(int fd) {
  int error = 0;
  socklen_t size = sizeof(error);
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
}

// A reset instead of a FIN: the server frees the connection at once, and no
// TIME_WAIT is left on our side to crowd the next run's ephemeral ports.
void close_abortively(int fd) {
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  ::close(fd);
}

// --- the caller being measured ------------------------------------------------

struct ProbeStats {
  int sent = 0;
  int ok = 0;        // 200
  int other = 0;     // answered, another status
  int timed_out = 0; // no reply within --probe-timeout-ms
  int failed = 0;    // connection refused, reset or closed before a reply
  std::vector<double> answered_ms;
  double seconds = 0;
};

// One keep-alive connection, POSTing one request at a time; reconnects
// (inside the next request's timed window) after a close, a failure or a
// timeout, as an HTTP client's pool would.
class Probe {
 public:
  enum class Outcome { answered, timed_out, failed };
  struct Result {
    Outcome outcome;
    int status = 0;
  };

  Probe(const sockaddr_in& to, std::string request) : to_(to), request_(std::move(request)) {}
  ~Probe() { drop(); }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  Result post(Clock::time_point deadline) {
    if (fd_ < 0 && !connect_by(deadline)) return fail(Clock::now() >= deadline);
    if (!write_by(deadline)) return fail(Clock::now() >= deadline);
    while (true) {
      try {
        if (const auto f = frame_response(in_)) {
          Result r{Outcome::answered, f->status};
          in_.erase(0, f->length);
          if (f->close) drop();
          return r;
        }
      } catch (const std::runtime_error&) {
        return fail(false);
      }
      if (!read_by(deadline)) return fail(Clock::now() >= deadline);
    }
  }

  bool connect_by(Clock::time_point deadline) {
    fd_ = start_connect(to_);
    if (fd_ < 0) return false;
    return wait_for(POLLOUT, deadline) && connect_succeeded(fd_);
  }

 private:
  Result fail(bool timed_out) {
    drop();
    return Result{timed_out ? Outcome::timed_out : Outcome::failed};
  }

  void drop() {
    if (fd_ >= 0) close_abortively(fd_);
    fd_ = -1;
    in_.clear();
  }

  bool wait_for(short events, Clock::time_point deadline) {
    while (true) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n > 0) return true;  // ready, or an error the next call reports
      if (n < 0 && errno != EINTR) return false;
    }
  }

  bool write_by(Clock::time_point deadline) {
    std::size_t sent = 0;
    while (sent < request_.size()) {
      const ssize_t n =
          ::send(fd_, request_.data() + sent, request_.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_for(POLLOUT, deadline)) return false;
      } else {
        return false;
      }
    }
    return true;
  }

  // Appends what arrives; false at the end of the stream, an error or the deadline.
  bool read_by(Clock::time_point deadline) {
    while (true) {
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n > 0) {
        in_.append(chunk, static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) return false;
      if (!wait_for(POLLIN, deadline)) return false;
    }
  }

  sockaddr_in to_;
  std::string request_;
  int fd_ = -1;
  std::string in_;
};

ProbeStats run_probes(Probe& probe, const Options& o, int count, double seconds) {
  ProbeStats s;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(seconds));
  const auto timeout = std::chrono::milliseconds(o.probe_timeout_ms);
  // The caller's own connection is open before the clock starts, as a pooled
  // client's would be.
  probe.connect_by(Clock::now() + timeout);
  const auto interval = std::chrono::duration_cast<Clock::duration>(Millis(o.probe_interval_ms));
  auto next = Clock::now();
  while (s.sent < count && Clock::now() < end) {
    std::this_thread::sleep_until(next);
    const auto sent_at = Clock::now();
    next = std::max(next + interval, sent_at);
    const auto r = probe.post(sent_at + timeout);
    ++s.sent;
    switch (r.outcome) {
      case Probe::Outcome::answered:
        s.answered_ms.push_back(Millis(Clock::now() - sent_at).count());
        ++(r.status == 200 ? s.ok : s.other);
        break;
      case Probe::Outcome::timed_out:
        ++s.timed_out;
        break;
      case Probe::Outcome::failed:
        ++s.failed;
        break;
    }
  }
  s.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return s;
}

// Nearest rank over every request sent; one that got no reply ranks above
// every answer, so a percentile that lands on one says so instead of a number.
std::string percentile(const ProbeStats& s, double p) {
  if (s.sent == 0) return "none";
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * s.sent));
  const std::size_t index = std::max<std::size_t>(rank, 1) - 1;
  if (index >= s.answered_ms.size()) return s.timed_out > 0 ? "timed_out" : "failed";
  std::ostringstream out;
  out.precision(3);
  out << std::fixed << s.answered_ms[index];
  return out.str();
}

void print_probes(const char* phase, ProbeStats s) {
  std::sort(s.answered_ms.begin(), s.answered_ms.end());
  std::printf("probe phase=%s sent=%d ok=%d other_status=%d timed_out=%d failed=%d "
              "p50_ms=%s p99_ms=%s max_ms=%s seconds=%.2f\n",
              phase, s.sent, s.ok, s.other, s.timed_out, s.failed, percentile(s, 50).c_str(),
              percentile(s, 99).c_str(), percentile(s, 100).c_str(), s.seconds);
  std::fflush(stdout);
}

// --- the crowd: idle and trickling connections, on one epoll thread -----------

struct CrowdCounts {
  int idle_connected = 0, idle_answered = 0, idle_ok = 0, idle_failed = 0, idle_closed = 0;
  int trickle_connected = 0, trickle_failed = 0, trickle_answered = 0, trickle_closed = 0;
  long long trickle_bytes = 0;

  int idle_open() const { return idle_connected - idle_closed; }
  int idle_settled() const { return idle_answered + idle_failed; }
  int trickle_open() const { return trickle_connected - trickle_closed; }
  int trickle_settled() const { return trickle_connected + trickle_failed; }
};

class Crowd {
 public:
  Crowd(const Options& o, const sockaddr_in& to)
      : o_(o),
        to_(to),
        idle_request_(o.idle_post ? post_request(o) : health_request(o)),
        trickle_prefix_(trickle_prefix(o)),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_ < 0) throw std::runtime_error("epoll_create1 failed");
    conns_.reserve(static_cast<std::size_t>(o.idle + o.trickle));
    thread_ = std::thread([this] { run(); });
  }

  ~Crowd() {
    stop_ = true;
    thread_.join();
    for (auto& c : conns_) {
      if (c.fd >= 0) close_abortively(c.fd);
    }
    ::close(epoll_);
  }
  Crowd(const Crowd&) = delete;
  Crowd& operator=(const Crowd&) = delete;

  void open_idle() { want_idle_ = true; }
  void open_trickle() { want_trickle_ = true; }

  CrowdCounts counts() const {
    CrowdCounts c;
    c.idle_connected = idle_connected_;
    c.idle_answered = idle_answered_;
    c.idle_ok = idle_ok_;
    c.idle_failed = idle_failed_;
    c.idle_closed = idle_closed_;
    c.trickle_connected = trickle_connected_;
    c.trickle_failed = trickle_failed_;
    c.trickle_answered = trickle_answered_;
    c.trickle_closed = trickle_closed_;
    c.trickle_bytes = trickle_bytes_;
    return c;
  }

 private:
  enum class Kind { idle, trickle };
  enum class State { connecting, sending, reading, idle, trickling, done };
  struct Conn {
    int fd = -1;
    Kind kind = Kind::idle;
    State state = State::connecting;
    std::size_t sent = 0;  // of the request, or of the endless head
    std::string in;
    Clock::time_point next_send;
    bool answered = false;
  };

  void run() {
    std::vector<epoll_event> events(1024);
    while (!stop_) {
      open_more();
      const int timeout_ms = trickling_ > 0 ? 5 : 50;
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
      for (int i = 0; i < n; ++i) on_event(conns_[events[i].data.u64], events[i].events);
      trickle_due();
    }
  }

  // At most --connect-batch attempts in flight, so that a listen backlog of a
  // few hundred never overflows into SYN retries measured as slowness.
  void open_more() {
    while (in_flight_ < o_.connect_batch) {
      Kind kind;
      if (want_idle_ && opened_idle_ < o_.idle) {
        kind = Kind::idle;
        ++opened_idle_;
      } else if (want_trickle_ && opened_trickle_ < o_.trickle) {
        kind = Kind::trickle;
        ++opened_trickle_;
      } else {
        return;
      }
      Conn c;
      c.kind = kind;
      c.fd = start_connect(to_);
      if (c.fd < 0) {
        ++(kind == Kind::idle ? idle_failed_ : trickle_failed_);
        continue;
      }
      conns_.push_back(std::move(c));
      watch(conns_.size() - 1, EPOLLOUT, EPOLL_CTL_ADD);
      ++in_flight_;
    }
  }

  void watch(std::size_t index, std::uint32_t events, int op) {
    epoll_event e{};
    e.events = events;
    e.data.u64 = index;
    ::epoll_ctl(epoll_, op, conns_[index].fd, &e);
  }

  void on_event(Conn& c, std::uint32_t events) {
    const auto index = static_cast<std::size_t>(&c - conns_.data());
    switch (c.state) {
      case State::connecting:
        --in_flight_;
        if (!connect_succeeded(c.fd)) return finish(c, /*connected=*/false);
        if (c.kind == Kind::trickle) {
          ++trickle_connected_;
          ++trickling_;
          c.state = State::trickling;
          c.next_send = Clock::now();
          watch(index, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
          return;
        }
        ++idle_connected_;
        ++in_flight_;  // until answered
        c.state = State::sending;
        [[fallthrough]];
      case State::sending:
        send_request(c, index);
        return;
      case State::reading:
        read_reply(c);
        return;
      case State::idle:
      case State::trickling:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) drain(c);
        return;
      case State::done:
        return;
    }
  }

  void send_request(Conn& c, std::size_t index) {
    while (c.sent < idle_request_.size()) {
      const ssize_t n = ::send(c.fd, idle_request_.data() + c.sent, idle_request_.size() - c.sent,
                               MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        watch(index, EPOLLOUT, EPOLL_CTL_MOD);
        return;
      } else {
        return finish(c, true);
      }
    }
    c.state = State::reading;
    watch(index, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  }

  void read_reply(Conn& c) {
    if (!receive(c)) return finish(c, true);
    try {
      const auto f = frame_response(c.in);
      if (!f) return;
      c.answered = true;
      ++idle_answered_;
      if (f->status == 200) ++idle_ok_;
      --in_flight_;
      c.in.clear();
      c.state = State::idle;
    } catch (const std::runtime_error&) {
      finish(c, true);
    }
  }

  // An idle or trickling connection the server wrote to: a refusal (408,
  // 431, ...) or the end of the stream.
  void drain(Conn& c) {
    if (c.kind == Kind::trickle && !c.answered) {
      c.answered = true;
      ++trickle_answered_;
    }
    if (!receive(c)) finish(c, true);
    c.in.clear();
  }

  // Appends what is readable; false once the stream has ended or failed.
  static bool receive(Conn& c) {
    while (true) {
      char chunk[4096];
      const ssize_t n = ::recv(c.fd, chunk, sizeof(chunk), 0);
      if (n > 0) {
        c.in.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
  }

  void finish(Conn& c, bool connected) {
    if (c.kind == Kind::idle) {
      if (!connected) {
        ++idle_failed_;
      } else if (!c.answered) {
        ++idle_failed_;
        --in_flight_;
        ++idle_closed_;
      } else {
        ++idle_closed_;
      }
    } else if (!connected) {
      ++trickle_failed_;
    } else {
      ++trickle_closed_;
      --trickling_;
    }
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
    close_abortively(c.fd);
    c.fd = -1;
    c.state = State::done;
  }

  void trickle_due() {
    if (trickling_ == 0) return;
    const auto now = Clock::now();
    const auto interval = std::chrono::milliseconds(o_.trickle_interval_ms);
    for (auto& c : conns_) {
      if (c.state != State::trickling || c.next_send > now) continue;
      char bytes[64];
      const auto count = static_cast<std::size_t>(std::min(o_.trickle_bytes, 64));
      for (std::size_t i = 0; i < count; ++i) {
        const std::size_t at = c.sent + i;
        bytes[i] = at < trickle_prefix_.size() ? trickle_prefix_[at] : 'a';
      }
      const ssize_t n = ::send(c.fd, bytes, count, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<std::size_t>(n);
        trickle_bytes_ += n;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        finish(c, true);
        continue;
      }
      c.next_send = now + interval;
    }
  }

  const Options& o_;
  sockaddr_in to_;
  std::string idle_request_;
  std::string trickle_prefix_;
  int epoll_;
  std::vector<Conn> conns_;  // reserved up front: indexes in epoll data stay valid
  int opened_idle_ = 0, opened_trickle_ = 0, in_flight_ = 0, trickling_ = 0;
  std::atomic<bool> want_idle_{false}, want_trickle_{false}, stop_{false};
  std::atomic<int> idle_connected_{0}, idle_answered_{0}, idle_ok_{0}, idle_failed_{0},
      idle_closed_{0};
  std::atomic<int> trickle_connected_{0}, trickle_failed_{0}, trickle_answered_{0},
      trickle_closed_{0};
  std::atomic<long long> trickle_bytes_{0};
  std::thread thread_;
};

// Polls `done` until it holds or `seconds` pass; how long it took.
double wait_until(const std::function<bool()>& done, double seconds) {
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(seconds));
  while (!done() && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// --- the rest -----------------------------------------------------------------

// Summed VmRSS of the given processes in KiB; nullopt when one cannot be read.
std::optional<long> rss_kib(const std::vector<int>& pids) {
  if (pids.empty()) return std::nullopt;
  long total = 0;
  for (const int pid : pids) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    bool found = false;
    while (std::getline(status, line)) {
      if (line.starts_with("VmRSS:")) {
        total += std::atol(line.c_str() + 6);
        found = true;
      }
    }
    if (!found) return std::nullopt;
  }
  return total;
}

std::string show(std::optional<long> kib) { return kib ? std::to_string(*kib) : "unknown"; }

// Raises the soft limit on open files to the hard one (and the hard one
// when the process may); false when that still leaves too few.
bool raise_open_files(long needed) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_max != RLIM_INFINITY && static_cast<long>(r.rlim_max) < needed) {
    rlimit wanted{static_cast<rlim_t>(needed), static_cast<rlim_t>(needed)};
    if (::setrlimit(RLIMIT_NOFILE, &wanted) == 0) r = wanted;
  }
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  std::printf("limits nofile=%ld needed=%ld\n", static_cast<long>(r.rlim_cur), needed);
  std::fflush(stdout);
  return r.rlim_cur == RLIM_INFINITY || static_cast<long>(r.rlim_cur) >= needed;
}

void start_watchdog(double seconds) {
  std::thread([seconds] {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    std::printf("watchdog fired_after_seconds=%.0f\n", seconds);
    std::fflush(stdout);
    std::_Exit(3);
  }).detach();
}

void measure(const Options& o, const sockaddr_in& to) {
  Probe probe(to, post_request(o));
  print_probes("baseline", run_probes(probe, o, o.baseline_probes, o.probe_seconds));

  const auto before = rss_kib(o.rss_pids);
  std::printf("rss phase=before kib=%s\n", show(before).c_str());

  Crowd crowd(o, to);
  crowd.open_idle();
  const double idle_seconds =
      wait_until([&] { return crowd.counts().idle_settled() >= o.idle; }, o.open_seconds);
  const auto idle_rss = rss_kib(o.rss_pids);
  const CrowdCounts idle = crowd.counts();
  std::printf("idle wanted=%d connected=%d answered=%d ok=%d failed=%d open=%d seconds=%.2f\n",
              o.idle, idle.idle_connected, idle.idle_answered, idle.idle_ok, idle.idle_failed,
              idle.idle_open(), idle_seconds);
  std::string per_idle = "unknown";
  if (before && idle_rss && idle.idle_open() > 0) {
    per_idle = std::to_string((*idle_rss - *before) * 1024 / idle.idle_open());
  }
  std::printf("rss phase=idle kib=%s per_idle_bytes=%s\n", show(idle_rss).c_str(),
              per_idle.c_str());
  std::fflush(stdout);

  crowd.open_trickle();
  const double trickle_seconds =
      wait_until([&] { return crowd.counts().trickle_settled() >= o.trickle; }, o.open_seconds);
  const CrowdCounts trickle = crowd.counts();
  std::printf("trickle wanted=%d connected=%d failed=%d seconds=%.2f\n", o.trickle,
              trickle.trickle_connected, trickle.trickle_failed, trickle_seconds);
  std::fflush(stdout);

  print_probes("loaded", run_probes(probe, o, o.probes, o.probe_seconds));

  const CrowdCounts end = crowd.counts();
  std::printf("end idle_open=%d idle_closed=%d trickle_open=%d trickle_closed=%d "
              "trickle_answered=%d trickle_bytes=%lld\n",
              end.idle_open(), end.idle_closed, end.trickle_open(), end.trickle_closed,
              end.trickle_answered, end.trickle_bytes);
  std::printf("rss phase=loaded kib=%s\n", show(rss_kib(o.rss_pids)).c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse_options(argc, argv);
  if (!options) return 2;
  start_watchdog(options->deadline_seconds);
  // The crowd, the probe, stdio and a margin.
  if (!raise_open_files(static_cast<long>(options->idle) + options->trickle + 64)) {
    std::cerr << "capacity-bench: not enough open files allowed (RLIMIT_NOFILE)\n";
    return 2;
  }
  try {
    measure(*options, server_address(*options));
  } catch (const std::exception& e) {
    std::cerr << "capacity-bench: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
