// cn_config.h: one table of options per command, filled from an optional
// JSON config file and then from command-line flags (flags win).
//
// Like Redis's config table, each option names its type, bounds, storage and
// help text once; the same table drives parsing, validation, JSON loading
// and --help. An unknown key or a bad value is an error that names the key,
// the value and what is allowed.
#ifndef CN_CONFIG_H
#define CN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cn_err.h"

struct cJSON;

#define CN_OPT_STRLEN 1024

typedef enum {
    CN_OPT_STRING, // dst is char[CN_OPT_STRLEN]
    CN_OPT_INT,    // dst is int64_t; bounds min..max (inclusive) unless both 0
    CN_OPT_DOUBLE, // dst is double; bounds as for INT
    CN_OPT_BOOL,   // dst is bool; --name, --no-name, --name=true|false
    CN_OPT_CHOICE, // dst is char[CN_OPT_STRLEN]; value must be one of choices
    CN_OPT_ARRAY,  // dst is const cJSON *: a JSON array, borrowed from the document
                   // (JSON only; min..max bound its length unless both 0)
    CN_OPT_OBJECT, // dst is const cJSON *: a JSON object, borrowed (JSON only)
} cn_opt_type;

// An entry whose dst is NULL is a key this command ignores when a --config
// file holds it (a file shared by every role of a cluster names the
// scheduler, which the scheduler itself has no use for); as a flag it is an
// error quoting help, and --help lists it apart from the options.
typedef struct cn_opt {
    const char *name;    // "listen": flag --listen, JSON key "listen"
    cn_opt_type type;    //
    void *dst;           // storage, holding the default on entry; NULL: ignored key
    const char *help;    // one line for --help
    double min, max;     // INT/DOUBLE bounds; both 0 means unbounded
    const char *choices; // CHOICE: "bsp|asp|ssp"
} cn_opt;

// A table ends with an entry whose name is NULL.
#define CN_OPT_END                                                                                 \
    {                                                                                              \
        NULL, CN_OPT_STRING, NULL, NULL, 0, 0, NULL                                                \
    }

#define CN_ARGS_MAX 64

typedef struct cn_args {
    bool help;                       // --help or -h was given
    int npos;                        // positional arguments, in order
    char *pos[CN_ARGS_MAX];          // borrowed from argv
    char config_path[CN_OPT_STRLEN]; // --config FILE, if any
} cn_args;

// cn_config_parse applies `--config FILE` (JSON object) first, then every
// flag in argv[0..argc), to the table. argv must not include the program or
// subcommand name. "--" ends options. Positional arguments go to out->pos.
// Errors: CN_EINVAL (unknown flag or key, bad value, missing value),
// CN_ENOTFOUND / CN_EIO / CN_EFORMAT (config file); err says what, where and
// what is allowed, e.g. `--threads: "abc" is not an integer (allowed: 1..256)`.
cn_err cn_config_parse(const cn_opt *opts, int argc, char **argv, cn_args *out, char *err,
                       size_t errlen);

// cn_config_load_json applies the top-level keys of the JSON object in text
// (read from the file named by origin, used in messages) to the table.
cn_err cn_config_load_json(const cn_opt *opts, const char *text, const char *origin, char *err,
                           size_t errlen);

// cn_config_apply_json applies the members of the JSON object obj to the
// table, as cn_config_load_json does for text. ARRAY and OBJECT options
// point into obj, which must outlive their use. origin prefixes errors
// ("job.json", "task.params"); errors name the key, the value and what is
// allowed, with "did you mean" for an unknown key.
cn_err cn_config_apply_json(const cn_opt *opts, const struct cJSON *obj, const char *origin,
                            char *err, size_t errlen);

// cn_config_set sets one option from its string form; origin prefixes errors
// ("--threads", "node.json: key \"threads\"").
cn_err cn_config_set(const cn_opt *opts, const char *name, const char *value, const char *origin,
                     char *err, size_t errlen);

// cn_config_print_help writes one line per option with its default.
void cn_config_print_help(const cn_opt *opts, FILE *out);

// cn_config_closest returns the option name nearest to name by edit distance
// (for "did you mean"), or NULL if nothing is close.
const char *cn_config_closest(const cn_opt *opts, const char *name);

// cn_closest_name returns the entry of the NULL-terminated list names that is
// nearest to name (at most two edits away, '_' and '-' alike), or NULL.
const char *cn_closest_name(const char *const *names, const char *name);

#endif
