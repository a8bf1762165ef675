#include "queue/message_codec.h"

#include <cstdint>
#include <cstring>

namespace slack_proxy {
namespace {

constexpr std::uint8_t kVersion = 1;

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 4);
}
void put_i64(std::string& out, std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out.append(b, 8);
}
void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(std::uint8_t& v) {
    if (in_.size() < 1) return false;
    v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (in_.size() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<std::uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(4);
    return true;
  }
  bool i64(std::int64_t& v) {
    if (in_.size() < 8) return false;
    std::uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u |= std::uint64_t(static_cast<std::uint8_t>(in_[i])) << (8 * i);
    v = static_cast<std::int64_t>(u);
    in_.remove_prefix(8);
    return true;
  }
  bool str(std::string& s) {
    std::uint32_t n = 0;
    if (!u32(n) || in_.size() < n) return false;
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace

std::int64_t to_unix_ms(sdk::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

sdk::WallTime from_unix_ms(std::int64_t ms) {
  return sdk::WallTime(std::chrono::duration_cast<sdk::WallTime::duration>(
      std::chrono::milliseconds(ms)));
}

std::string encode_message(const sdk::Message& m) {
  std::string out;
  out.reserve(64 + m.id.size() + m.pipeline.size() + 2 * m.channel.size() + m.workspace.size() +
              m.payload.size() + m.content_type.size() + m.caller.size());
  out.push_back(static_cast<char>(kVersion));
  put_str(out, m.id);
  put_str(out, m.pipeline);
  put_str(out, m.channel);
  put_str(out, m.original_channel);
  put_str(out, m.workspace);
  put_str(out, m.payload);
  put_str(out, m.content_type);
  put_str(out, m.caller);
  put_u32(out, static_cast<std::uint32_t>(m.attributes.size()));
  for (const auto& [k, v] : m.attributes) {
    put_str(out, k);
    put_str(out, v);
  }
  put_u32(out, m.attempts);
  put_i64(out, to_unix_ms(m.received_at));
  put_i64(out, to_unix_ms(m.last_attempt_at));
  return out;
}

std::optional<sdk::Message> decode_message(std::string_view record) {
  Reader r(record);
  sdk::Message m;
  std::uint8_t version = 0;
  if (!r.u8(version) || version != kVersion) return std::nullopt;
  if (!r.str(m.id) || !r.str(m.pipeline) || !r.str(m.channel) || !r.str(m.original_channel) ||
      !r.str(m.workspace) || !r.str(m.payload) || !r.str(m.content_type) || !r.str(m.caller))
    return std::nullopt;
  std::uint32_t n = 0;
  if (!r.u32(n)) return std::nullopt;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!r.str(k) || !r.str(v)) return std::nullopt;
    m.attributes.emplace(std::move(k), std::move(v));
  }
  std::int64_t received = 0, last = 0;
  if (!r.u32(m.attempts) || !r.i64(received) || !r.i64(last) || !r.done()) return std::nullopt;
  m.received_at = from_unix_ms(received);
  m.last_attempt_at = last == 0 ? sdk::WallTime{} : from_unix_ms(last);
  return m;
}

}  // namespace slack_proxy
