// cn_config.c: option tables, flags and JSON config files.
#include "common/cn_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cn_file.h"

static void normalize(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = src[i] == '_' ? '-' : src[i];
    dst[i] = 0;
}

static const cn_opt *find_opt(const cn_opt *opts, const char *name)
{
    char want[128], have[128];
    normalize(want, sizeof want, name);
    for (const cn_opt *o = opts; o->name; o++) {
        normalize(have, sizeof have, o->name);
        if (strcmp(want, have) == 0)
            return o;
    }
    return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *cn_closest_name(const char *const *names, const char *name)
{
    const char *best = NULL;
    size_t bestd = 3; // at most two edits away
    char want[128], have[128];
    normalize(want, sizeof want, name);
    for (size_t i = 0; names[i]; i++) {
        normalize(have, sizeof have, names[i]);
        size_t dd = edit_distance(want, have);
        if (dd < bestd) {
            bestd = dd;
            best = names[i];
        }
    }
    return best;
}

const char *cn_config_closest(const cn_opt *opts, const char *name)
{
    const char *names[256];
    size_t n = 0;
    for (const cn_opt *o = opts; o->name && n + 1 < sizeof names / sizeof names[0]; o++)
        names[n++] = o->name;
    names[n] = NULL;
    return cn_closest_name(names, name);
}

// unknown reports a name the table lacks: noun is "option" for flags and
// "key" for JSON documents.
static cn_err unknown(const cn_opt *opts, const char *name, const char *origin, const char *noun,
                      char *err, size_t errlen)
{
    const char *near = cn_config_closest(opts, name);
    if (near)
        return cn_errf(err, errlen, CN_EINVAL, "%s: unknown %s \"%s\" (did you mean \"%s\"?)",
                       origin, noun, name, near);
    char list[512] = "";
    size_t used = 0;
    for (const cn_opt *o = opts; o->name && used + 1 < sizeof list; o++)
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", o->name);
    return cn_errf(err, errlen, CN_EINVAL, "%s: unknown %s \"%s\" (allowed: %s)", origin, noun,
                   name, list);
}

// choice_hint writes " (did you mean \"x\"?)" when a choice is near v.
static void choice_hint(const char *choices, const char *v, char *out, size_t n)
{
    char buf[CN_OPT_STRLEN];
    const char *names[64];
    size_t k = 0;
    snprintf(buf, sizeof buf, "%s", choices);
    for (char *save = NULL, *t = strtok_r(buf, "|", &save); t && k + 1 < 64;
         t = strtok_r(NULL, "|", &save))
        names[k++] = t;
    names[k] = NULL;
    const char *near = cn_closest_name(names, v);
    if (near)
        snprintf(out, n, " (did you mean \"%s\"?)", near);
    else
        out[0] = 0;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static void bounds_text(const cn_opt *o, char *buf, size_t n)
{
    if (o->min == 0 && o->max == 0)
        snprintf(buf, n, "any");
    else if (o->type == CN_OPT_INT)
        snprintf(buf, n, "%lld..%lld", (long long)o->min, (long long)o->max);
    else
        snprintf(buf, n, "%g..%g", o->min, o->max);
}

cn_err cn_config_set(const cn_opt *opts, const char *name, const char *value, const char *origin,
                     char *err, size_t errlen)
{
    const cn_opt *o = find_opt(opts, name);
    if (o == NULL)
        return unknown(opts, name, origin, "option", err, errlen);
    if (o->dst == NULL)
        return cn_errf(err, errlen, CN_EINVAL, "%s: not an option of this command (%s)", origin,
                       o->help);
    char allowed[96], hint[96];
    switch (o->type) {
    case CN_OPT_STRING:
        if (strlen(value) >= CN_OPT_STRLEN)
            return cn_errf(err, errlen, CN_EINVAL, "%s: value is longer than %d bytes", origin,
                           CN_OPT_STRLEN - 1);
        snprintf((char *)o->dst, CN_OPT_STRLEN, "%s", value);
        return CN_OK;
    case CN_OPT_CHOICE:
        if (!choice_ok(o->choices, value)) {
            choice_hint(o->choices, value, hint, sizeof hint);
            return cn_errf(err, errlen, CN_EINVAL, "%s: \"%s\" is not one of %s%s", origin, value,
                           o->choices, hint);
        }
        snprintf((char *)o->dst, CN_OPT_STRLEN, "%s", value);
        return CN_OK;
    case CN_OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        bounds_text(o, allowed, sizeof allowed);
        if (errno || end == value || *end != 0)
            return cn_errf(err, errlen, CN_EINVAL, "%s: \"%s\" is not an integer (allowed: %s)",
                           origin, value, allowed);
        if (!(o->min == 0 && o->max == 0) && (v < o->min || v > o->max))
            return cn_errf(err, errlen, CN_EINVAL, "%s: %lld is out of range (allowed: %s)", origin,
                           v, allowed);
        *(int64_t *)o->dst = v;
        return CN_OK;
    }
    case CN_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        bounds_text(o, allowed, sizeof allowed);
        if (errno || end == value || *end != 0 || !isfinite(v))
            return cn_errf(err, errlen, CN_EINVAL, "%s: \"%s\" is not a number (allowed: %s)",
                           origin, value, allowed);
        if (!(o->min == 0 && o->max == 0) && (v < o->min || v > o->max))
            return cn_errf(err, errlen, CN_EINVAL, "%s: %g is out of range (allowed: %s)", origin,
                           v, allowed);
        *(double *)o->dst = v;
        return CN_OK;
    }
    case CN_OPT_ARRAY:
    case CN_OPT_OBJECT:
        return cn_errf(err, errlen, CN_EINVAL, "%s: takes a JSON %s, given in a JSON file", origin,
                       o->type == CN_OPT_ARRAY ? "array" : "object");
    case CN_OPT_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
            *(bool *)o->dst = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
            *(bool *)o->dst = false;
        else
            return cn_errf(err, errlen, CN_EINVAL,
                           "%s: \"%s\" is not a boolean (allowed: true|false)", origin, value);
        return CN_OK;
    }
    return cn_errf(err, errlen, CN_EINTERNAL, "%s: bad option type", origin);
}

// apply_one applies one JSON member it to option o. where names it.
static cn_err apply_one(const cn_opt *opts, const cn_opt *o, const cJSON *it, const char *where,
                        char *err, size_t errlen)
{
    char val[CN_OPT_STRLEN];
    if (o->type == CN_OPT_ARRAY || o->type == CN_OPT_OBJECT) {
        bool arr = o->type == CN_OPT_ARRAY;
        if (arr ? !cJSON_IsArray(it) : !cJSON_IsObject(it))
            return cn_errf(err, errlen, CN_EINVAL, "%s: expected a JSON %s", where,
                           arr ? "array" : "object");
        int n = cJSON_GetArraySize(it);
        if (arr && !(o->min == 0 && o->max == 0) && (n < o->min || n > o->max))
            return cn_errf(err, errlen, CN_EINVAL,
                           "%s: %d elements is out of range (allowed: %g..%g elements)", where, n,
                           o->min, o->max);
        *(const cJSON **)o->dst = it;
        return CN_OK;
    }
    if (cJSON_IsString(it)) {
        if (o->type == CN_OPT_INT || o->type == CN_OPT_DOUBLE || o->type == CN_OPT_BOOL)
            return cn_errf(err, errlen, CN_EINVAL, "%s: expected %s, got the string \"%s\"", where,
                           o->type == CN_OPT_BOOL
                               ? "a boolean"
                               : (o->type == CN_OPT_INT ? "an integer" : "a number"),
                           it->valuestring);
        if (strlen(it->valuestring) >= sizeof val)
            return cn_errf(err, errlen, CN_EINVAL, "%s: value is longer than %d bytes", where,
                           CN_OPT_STRLEN - 1);
        snprintf(val, sizeof val, "%s", it->valuestring);
    } else if (cJSON_IsBool(it)) {
        snprintf(val, sizeof val, "%s", cJSON_IsTrue(it) ? "true" : "false");
    } else if (cJSON_IsNumber(it)) {
        if (o->type == CN_OPT_INT && it->valuedouble != floor(it->valuedouble))
            return cn_errf(err, errlen, CN_EINVAL, "%s: %g is not an integer", where,
                           it->valuedouble);
        if (o->type == CN_OPT_INT)
            snprintf(val, sizeof val, "%.0f", it->valuedouble);
        else
            snprintf(val, sizeof val, "%.17g", it->valuedouble);
    } else {
        return cn_errf(err, errlen, CN_EINVAL, "%s: expected a string, number or boolean", where);
    }
    return cn_config_set(opts, it->string, val, where, err, errlen);
}

cn_err cn_config_apply_json(const cn_opt *opts, const cJSON *obj, const char *origin, char *err,
                            size_t errlen)
{
    if (!cJSON_IsObject(obj))
        return cn_errf(err, errlen, CN_EFORMAT, "%s: expected a JSON object of key: value", origin);
    for (const cJSON *it = obj->child; it; it = it->next) {
        char where[512];
        snprintf(where, sizeof where, "%s: key \"%s\"", origin, it->string);
        const cn_opt *o = find_opt(opts, it->string);
        if (o == NULL)
            return unknown(opts, it->string, origin, "key", err, errlen);
        if (o->dst == NULL)
            continue; // a key of the other roles in a shared file
        cn_err e = apply_one(opts, o, it, where, err, errlen);
        if (e != CN_OK)
            return e;
    }
    return CN_OK;
}

cn_err cn_config_load_json(const cn_opt *opts, const char *text, const char *origin, char *err,
                           size_t errlen)
{
    cJSON *root = cJSON_Parse(text);
    if (root == NULL) {
        const char *at = cJSON_GetErrorPtr();
        size_t line = 1;
        for (const char *p = text; at && p < at && *p; p++)
            line += (*p == '\n');
        return cn_errf(err, errlen, CN_EFORMAT, "%s:%zu: invalid JSON (fix the syntax near here)",
                       origin, line);
    }
    for (const cn_opt *o = opts; o->name; o++)
        if (o->type == CN_OPT_ARRAY || o->type == CN_OPT_OBJECT) {
            cJSON_Delete(root); // their values would outlive the document
            return cn_errf(err, errlen, CN_EINVAL,
                           "%s: option \"%s\" takes a JSON value; use cn_config_apply_json", origin,
                           o->name);
        }
    cn_err rc = cn_config_apply_json(opts, root, origin, err, errlen);
    cJSON_Delete(root);
    return rc;
}

cn_err cn_config_parse(const cn_opt *opts, int argc, char **argv, cn_args *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    // Pass 1: the config file, so that flags override it.
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return cn_errf(err, errlen, CN_EINVAL, "--config: missing file name");
            path = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path) {
            snprintf(out->config_path, sizeof out->config_path, "%s", path);
            uint8_t *text;
            size_t len;
            cn_err e = cn_file_read_all(path, 16 << 20, &text, &len, err, errlen);
            if (e != CN_OK)
                return e;
            e = cn_config_load_json(opts, (char *)text, path, err, errlen);
            free(text);
            if (e != CN_OK)
                return e;
        }
    }
    // Pass 2: flags and positionals.
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (out->npos >= CN_ARGS_MAX)
                return cn_errf(err, errlen, CN_EINVAL, "too many arguments (at most %d)",
                               CN_ARGS_MAX);
            out->pos[out->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            out->help = true;
            continue;
        }
        if (a[1] != '-')
            return cn_errf(err, errlen, CN_EINVAL,
                           "%s: options are written --name or --name=value (see --help)", a);
        char name[128];
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (nlen >= sizeof name)
            return cn_errf(err, errlen, CN_EINVAL, "%s: option name too long", a);
        memcpy(name, a + 2, nlen);
        name[nlen] = 0;
        if (strcmp(name, "config") == 0) {
            if (!eq)
                i++;
            continue;
        }
        char origin[160];
        snprintf(origin, sizeof origin, "--%s", name);
        const cn_opt *o = find_opt(opts, name);
        if (o == NULL && strncmp(name, "no-", 3) == 0 && !eq) {
            const cn_opt *neg = find_opt(opts, name + 3);
            if (neg && neg->type == CN_OPT_BOOL) {
                *(bool *)neg->dst = false;
                continue;
            }
        }
        if (o == NULL)
            return unknown(opts, name, origin, "option", err, errlen);
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->type == CN_OPT_BOOL) {
            value = "true";
        } else {
            if (i + 1 >= argc)
                return cn_errf(err, errlen, CN_EINVAL, "%s: missing value (%s)", origin, o->help);
            value = argv[++i];
        }
        cn_err e = cn_config_set(opts, name, value, origin, err, errlen);
        if (e != CN_OK)
            return e;
    }
    return CN_OK;
}

void cn_config_print_help(const cn_opt *opts, FILE *out)
{
    fprintf(out, "Options (also accepted as keys of a JSON file given with --config FILE):\n");
    bool ignored = false;
    for (const cn_opt *o = opts; o->name; o++) {
        char def[160] = "";
        if (o->dst == NULL) {
            ignored = true;
            continue;
        }
        switch (o->type) {
        case CN_OPT_STRING:
        case CN_OPT_CHOICE:
            if (((char *)o->dst)[0])
                snprintf(def, sizeof def, " (default: %s)", (char *)o->dst);
            break;
        case CN_OPT_INT:
            snprintf(def, sizeof def, " (default: %lld)", (long long)*(int64_t *)o->dst);
            break;
        case CN_OPT_DOUBLE:
            snprintf(def, sizeof def, " (default: %g)", *(double *)o->dst);
            break;
        case CN_OPT_BOOL:
            snprintf(def, sizeof def, " (default: %s)", *(bool *)o->dst ? "true" : "false");
            break;
        case CN_OPT_ARRAY:
        case CN_OPT_OBJECT:
            break;
        }
        char flag[160];
        if (o->type == CN_OPT_CHOICE)
            snprintf(flag, sizeof flag, "--%s %s", o->name, o->choices);
        else if (o->type == CN_OPT_BOOL)
            snprintf(flag, sizeof flag, "--[no-]%s", o->name);
        else
            snprintf(flag, sizeof flag, "--%s %s", o->name,
                     o->type == CN_OPT_STRING ? "S" : (o->type == CN_OPT_INT ? "N" : "X"));
        fprintf(out, "  %-30s %s%s\n", flag, o->help, def);
    }
    fprintf(out, "  %-30s %s\n", "--config FILE", "read options from a JSON object first");
    fprintf(out, "  %-30s %s\n", "-h, --help", "show this help");
    if (!ignored)
        return;
    fprintf(out, "Config keys this command ignores (a --config file shared by every role may "
                 "hold them):\n");
    for (const cn_opt *o = opts; o->name; o++)
        if (o->dst == NULL)
            fprintf(out, "  %-30s %s\n", o->name, o->help);
}
