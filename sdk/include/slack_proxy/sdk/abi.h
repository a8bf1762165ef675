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
#define SLACK_PROXY_ABI_MINOR 0
#endif

#define SLACK_PROXY_SDK_VERSION "0.1.0"

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
  SP_VALUE_STRING_LIST = 6  /* array of strings */
} sp_value_type;

/* One setting a plugin accepts. */
typedef struct sp_config_key {
  const char* key;           /* TOML key inside the stage table */
  sp_value_type type;
  const char* default_value; /* text for the type: strings and durations as
                                plain text ("#alerts", "1s"), the rest as TOML
                                values ("3", "1.5", "true", "[\"a\"]");
                                NULL = no default */
  int required;              /* non-zero: the user must set it */
  const char* doc;           /* one line, shown by `slack-proxy plugins` */
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
 * On failure returns non-zero and writes a NUL-terminated, secret-free
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
} sp_plugin_descriptor;

typedef const sp_plugin_descriptor* (*sp_entry_point_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SLACK_PROXY_SDK_ABI_H */
