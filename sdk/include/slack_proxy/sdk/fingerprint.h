// Build fingerprint: what must be identical between host and plugin for C++
// objects (std::string, vtables, exceptions) to cross the library boundary.
//
// The string is computed by the preprocessor of whoever includes this header,
// so the host's copy describes the host build and the plugin's copy describes
// the plugin build. The host compares the two before it calls into the plugin.
#ifndef SLACK_PROXY_SDK_FINGERPRINT_H
#define SLACK_PROXY_SDK_FINGERPRINT_H

#include <slack_proxy/sdk/abi.h>

// <version> is light and defines the standard-library identification macros.
#include <version>

#define SLACK_PROXY_STR2_(x) #x
#define SLACK_PROXY_STR_(x) SLACK_PROXY_STR2_(x)

#if defined(__clang__)
#define SLACK_PROXY_COMPILER_ "clang-" SLACK_PROXY_STR_(__clang_major__)
#elif defined(__GNUC__)
#define SLACK_PROXY_COMPILER_ "gcc-" SLACK_PROXY_STR_(__GNUC__)
#else
#define SLACK_PROXY_COMPILER_ "unknown-compiler"
#endif

#if defined(_LIBCPP_VERSION)
#define SLACK_PROXY_STDLIB_ "libc++-" SLACK_PROXY_STR_(_LIBCPP_VERSION)
#elif defined(__GLIBCXX__)
// The major version identifies the libstdc++ ABI generation; the dual-ABI
// switch decides the layout of std::string.
#define SLACK_PROXY_STDLIB_ \
  "libstdc++-" SLACK_PROXY_STR_(_GLIBCXX_RELEASE) "-cxx11abi" SLACK_PROXY_STR_(_GLIBCXX_USE_CXX11_ABI)
#else
#define SLACK_PROXY_STDLIB_ "unknown-stdlib"
#endif

// Sanitizers and the libstdc++ debug modes are part of it too, because each
// changes what the other side sees:
// - _GLIBCXX_DEBUG swaps std::vector, std::map, ... for checked containers
//   of another size and layout; a plugin built with it reads the host's
//   std::vector<std::string> as garbage (and crashes in it).
// - _GLIBCXX_ASSERTIONS keeps the layout, but its checks sit in inline
//   code that host and plugin then run in two flavours; it is kept in so
//   that "built like the host" means exactly that.
// - A sanitizer instruments allocation, stack and object layout
//   (ASan/HWASan redzones, TSan/MSan shadow state) and needs its runtime in
//   the process before anything else runs; mixing builds corrupts memory or
//   aborts the process. UBSan is listed where the compiler says so (clang);
//   GCC does not announce it, so there only the host's symbol check
//   (plugin_host.cc) sees a plugin that needs the UBSan runtime.
#if defined(_GLIBCXX_DEBUG)
#define SLACK_PROXY_GLIBCXX_MODE_ "-glibcxx_debug"
#elif defined(_GLIBCXX_ASSERTIONS)
#define SLACK_PROXY_GLIBCXX_MODE_ "-glibcxx_assertions"
#else
#define SLACK_PROXY_GLIBCXX_MODE_ ""
#endif

#if defined(__has_feature)
#define SLACK_PROXY_HAS_FEATURE_(x) __has_feature(x)
#else
#define SLACK_PROXY_HAS_FEATURE_(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || SLACK_PROXY_HAS_FEATURE_(address_sanitizer)
#define SLACK_PROXY_SAN_ADDRESS_ "-asan"
#else
#define SLACK_PROXY_SAN_ADDRESS_ ""
#endif
#if defined(__SANITIZE_HWADDRESS__) || SLACK_PROXY_HAS_FEATURE_(hwaddress_sanitizer)
#define SLACK_PROXY_SAN_HWADDRESS_ "-hwasan"
#else
#define SLACK_PROXY_SAN_HWADDRESS_ ""
#endif
#if defined(__SANITIZE_THREAD__) || SLACK_PROXY_HAS_FEATURE_(thread_sanitizer)
#define SLACK_PROXY_SAN_THREAD_ "-tsan"
#else
#define SLACK_PROXY_SAN_THREAD_ ""
#endif
#if SLACK_PROXY_HAS_FEATURE_(memory_sanitizer)
#define SLACK_PROXY_SAN_MEMORY_ "-msan"
#else
#define SLACK_PROXY_SAN_MEMORY_ ""
#endif
#if SLACK_PROXY_HAS_FEATURE_(undefined_behavior_sanitizer)
#define SLACK_PROXY_SAN_UNDEFINED_ "-ubsan"
#else
#define SLACK_PROXY_SAN_UNDEFINED_ ""
#endif

#define SLACK_PROXY_SANITIZE_                                                        \
  SLACK_PROXY_SAN_ADDRESS_ SLACK_PROXY_SAN_HWADDRESS_ SLACK_PROXY_SAN_THREAD_       \
      SLACK_PROXY_SAN_MEMORY_ SLACK_PROXY_SAN_UNDEFINED_

// Example: "sdk-0.4.0;gcc-12;libstdc++-12-cxx11abi1", or with
// -D_GLIBCXX_DEBUG -fsanitize=address "...-cxx11abi1-glibcxx_debug-asan".
#ifndef SLACK_PROXY_BUILD_FINGERPRINT
#define SLACK_PROXY_BUILD_FINGERPRINT                                  \
  "sdk-" SLACK_PROXY_SDK_VERSION ";" SLACK_PROXY_COMPILER_ ";" SLACK_PROXY_STDLIB_ \
      SLACK_PROXY_GLIBCXX_MODE_ SLACK_PROXY_SANITIZE_
#endif

#endif  // SLACK_PROXY_SDK_FINGERPRINT_H
