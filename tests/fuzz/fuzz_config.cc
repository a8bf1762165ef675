// libFuzzer target: parse_config on arbitrary TOML text.
//
// Besides "no crash, no leak, no undefined behaviour" it checks what
// config.h promises: parse_config either returns a configuration with at
// least one pipeline, each with at least one stage, or throws ConfigError
// (and nothing else) whose every line names the file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string source = "fuzz.toml";
  try {
    const auto config = slack_proxy::config::parse_config(text, source);
    FUZZ_CHECK(!config.pipelines.empty(), "a valid config has at least one pipeline");
    for (const auto& pipeline : config.pipelines)
      FUZZ_CHECK(!pipeline.stages.empty(), "a valid pipeline has at least one stage");
  } catch (const slack_proxy::config::ConfigError& e) {
    FUZZ_CHECK(!e.errors().empty(), "a ConfigError lists its problems");
    for (const auto& line : e.errors())
      FUZZ_CHECK(line.rfind(source, 0) == 0, "every problem names the file");
  }
  return 0;
}
