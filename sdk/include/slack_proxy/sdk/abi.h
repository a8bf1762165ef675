/*
 * slack-proxy plugin ABI: the only symbol a plugin library exports.
 *
 * This header is plain C on purpose. The host reads the descriptor below
 * *before* it touches any C++ type from the plugin, so a plugin built by a
 * different compiler, standard library or SDK is refused with a clear message
 * instead of crashing inside a vtable.
 *
 * Contract (every item is Required unless marked Optional):
 *   - Required: export `slack_proxy_plugin_descriptor` with C linkage and
 *     default visibility. It returns a pointer to a descriptor with static
 *     storage duration. It must not throw and must not allocate.
 *   - Required: `struct_size` is sizeof(sp_plugin_descriptor) as the plugin
 *     saw it. Fields are only ever appended, so the host reads no field past
 *     `struct_size`.
 *   - Required: `abi_major` equal to the host's; `abi_minor` not newer than the
 *     host's (the host may be newer, a plugin may be older).
 *   - Required: `build_fingerprint` equal to the host's. C++ objects cross the
 *     boundary, so compiler, standard library ABI and SDK version must match.
 *   - Required: `create` and `destroy`. Neither lets an exception escape.
 *   - Optional: `schema` (NULL when the plugin takes no settings).
 *
 * Plugin authors do not fill this by hand: SLACK_PROXY_PLUGIN in plugin.h
 * does it.
 */
#ifndef SLACK_PROXY_SDK_ABI_H
#define SLACK_PROXY_SDK_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a change breaks old plugins (removed or reordered members,
 * changed signatures). The host refuses any other major. */
#ifndef SLACK_PROXY_ABI_MAJOR
#define SLACK_PROXY_ABI_MAJOR 1
#endif
/* Bumped when something is appended that old plugins can ignore. */
#ifndef SLACK_PROXY_ABI_MINOR
#define SLACK_PROXY_ABI_MINOR 3
#endif

/* 1.1 appended: the sp_config_key fields from `flags` on, the setting types
 * ENUM, STRING_MAP and SECRET, sp_plugin_descriptor.schema_entry_size, and
 * create() returning no stage under SP_CREATE_CHECK_ONLY.
 * 1.2 appended: HostServices::shared_buckets() and budget_id(),
 * Sink::budget_of().
 * 1.3 appended: HostServices::shared_marks(). */

#define SLACK_PROXY_SDK_VERSION "0.4.0"

/* The name of the exported entry point. */
#define SLACK_PROXY_ENTRY_POINT "slack_proxy_plugin_descriptor"

/* What a stage does in a pipeline; decides which C++ interface `create`
 * returns (see stages.h). */
typedef enum sp_stage_kind {
  SP_STAGE_AUTHENTICATOR = 1, /* who is calling (ingress, before parsing) */
  SP_STAGE_ROUTER = 2,        /* rewrite channel/workspace (ingress) */
  SP_STAGE_RATE_LIMITER = 3,  /* when may the next message go (dispatcher) */
  SP_STAGE_GUARD = 4,         /* veto before send, learn from results */
  SP_STAGE_SINK = 5,          /* deliver one message */
  SP_STAGE_RETRY_POLICY = 6   /* retry or give up after a failure */
} sp_stage_kind;

/* Setting types a schema can declare. The host checks every value against
 * its declared type before the plugin sees it. */
typedef enum sp_value_type {
  SP_VALUE_STRING = 1,
  SP_VALUE_INTEGER = 2,
  SP_VALUE_NUMBER = 3,      /* floating point; integers are accepted */
  SP_VALUE_BOOLEAN = 4,
  SP_VALUE_DURATION = 5,    /* string such as "250ms", "1s", "15m", "2h" */
  SP_VALUE_STRING_LIST = 6, /* array of strings */
  /* ABI 1.1 */
  SP_VALUE_ENUM = 7,        /* string, one of `allowed` */
  SP_VALUE_STRING_MAP = 8,  /* table of string values: { "#a" = "#b" } */
  SP_VALUE_SECRET = 9       /* { env = "VAR" } or { file = "/path" }: the host
                               reads it when the stage is created (never in
                               check-only mode) and never shows it */
} sp_value_type;

/* sp_config_key.flags */
#define SP_KEY_HAS_MIN 0x1u       /* `min` applies */
#define SP_KEY_HAS_MAX 0x2u       /* `max` applies */
#define SP_KEY_MIN_EXCLUSIVE 0x4u /* value must be > min, not >= */
#define SP_KEY_MAX_EXCLUSIVE 0x8u /* value must be < max, not <= */

/* One setting a plugin accepts. Plugins lay these out with a stride of
 * sp_plugin_descriptor.schema_entry_size, so fields are only appended. */
typedef struct sp_config_key {
  const char* key;           /* TOML key inside the stage table */
  sp_value_type type;
  const char* default_value; /* text for the type: strings, enums and
                                durations as plain text ("#alerts", "1s"), the
                                rest as TOML values ("3", "1.5", "true",
                                "[\"a\"]", "{ a = \"b\" }"); NULL = no default.
                                A secret has no default. */
  int required;              /* non-zero: the user must set it */
  const char* doc;           /* one line, shown by `slack-proxy plugins` */
  /* ABI 1.1 */
  uint32_t flags;            /* SP_KEY_* */
  /* Bounds, checked by the host before the plugin sees the value: the value
   * itself for integers and numbers, milliseconds for durations, the number
   * of elements for string lists and maps, the length in bytes for strings. */
  double min;
  double max;
  const char* const* allowed; /* SP_VALUE_ENUM: the values it may take */
  uint32_t allowed_size;
} sp_config_key;

/* Passed to create(). Both pointers are C++ objects owned by the host and
 * valid for the whole life of the created stage:
 *   host   -> slack_proxy::sdk::HostServices*
 *   config -> const slack_proxy::sdk::ConfigView* */
/* sp_create_args.flags */
/* Only check the settings' meaning (`slack-proxy validate`): read no
 * secrets, open no connections, start nothing. The stage is destroyed right
 * after creation. */
#define SP_CREATE_CHECK_ONLY 0x1u

typedef struct sp_create_args {
  uint32_t struct_size;
  void* host;
  const void* config;
  const char* stage_name; /* the pipeline's name for this stage */
  uint32_t flags;         /* SP_CREATE_* */
} sp_create_args;

/* Returns 0 and sets *out_stage to a slack_proxy::sdk::Stage* on success.
 * Under SP_CREATE_CHECK_ONLY (ABI 1.1) success may leave *out_stage NULL:
 * "the settings are valid, there is nothing to build". On failure returns non-zero and writes a NUL-terminated, secret-free
 * explanation into err (at most err_len bytes). Never throws. */
typedef int (*sp_create_fn)(const sp_create_args* args, void** out_stage,
                            char* err, size_t err_len);

/* Destroys a stage made by create(), inside the plugin. Never throws. */
typedef void (*sp_destroy_fn)(void* stage);

typedef struct sp_plugin_descriptor {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* build_fingerprint;
  const char* name;    /* must equal the library's file stem */
  sp_stage_kind kind;
  const char* summary; /* one line */
  const sp_config_key* schema;
  uint32_t schema_size;
  sp_create_fn create;
  sp_destroy_fn destroy;
  /* ABI 1.1: sizeof(sp_config_key) as the plugin saw it, the stride of
   * `schema`. A 1.0 plugin lacks it; its entries end at `doc`. */
  uint32_t schema_entry_size;
} sp_plugin_descriptor;

typedef const sp_plugin_descriptor* (*sp_entry_point_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SLACK_PROXY_SDK_ABI_H */
