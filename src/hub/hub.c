/* hub.c - `axserve pull`: lists a hub repository and downloads its files
 * with libcurl (protocol and checks in hub.h). One file at a time, one
 * connection reused; no parallel transfers (a model pull is bound by the
 * link, and sequential output is easier to follow and to resume). */
#include "hub/hub.h"

#include <curl/curl.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/sha256.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/mem.h"

#define LFS_SIG "version https://git-lfs.github.com/spec/v1"
#define MAX_LISTING ((size_t)16 << 20)
#define MAX_FILES 100000
#define URL_MAX 8192

struct hub_file {
    char *path;   /* rfilename, checked by hub_safe_path */
    int64_t size; /* -1 if the listing has none */
    char sha[65]; /* lfs.sha256 from the listing (lowercase hex), "" if none */
};

/* ---- names ---------------------------------------------------------------- */

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

int hub_valid_repo(const char *repo)
{
    const char *slash = strchr(repo, '/');
    if (!slash || slash == repo || !slash[1] || strchr(slash + 1, '/'))
        return 0;
    for (const char *p = repo; *p; p++)
        if (p != slash && !name_char(*p))
            return 0;
    return strncmp(repo, "..", 2) != 0 && strcmp(slash + 1, "..") != 0 &&
           strcmp(slash + 1, ".") != 0 && strncmp(repo, "./", 2) != 0;
}

int hub_safe_path(const char *p)
{
    size_t n = strlen(p);
    if (!n || n > 1024 || p[0] == '/')
        return 0;
    const char *c = p;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t k = e ? (size_t)(e - c) : strlen(c);
        if (!k || (k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        for (size_t i = 0; i < k; i++)
            if ((unsigned char)c[i] < 0x20 || c[i] == '\\' || c[i] == 0x7f)
                return 0;
        c += k + (e ? 1 : 0);
        if (e && !*c)
            return 0; /* trailing slash */
    }
    return 1;
}

/* Percent-encodes everything but unreserved characters and '/'. */
static enum ax_err url_path(struct ax_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    enum ax_err rc = AX_OK;
    for (; *s && rc == AX_OK; s++) {
        unsigned char c = (unsigned char)*s;
        if (name_char((char)c) || c == '/' || c == '~')
            rc = ax_buf_putc(b, (char)c);
        else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = ax_buf_append(b, e, 3);
        }
    }
    return rc;
}

static enum ax_err make_url(char *out, const char *base, const char *repo, const char *mid,
                            const char *path, const char *tail, char *err)
{
    struct ax_buf b;
    ax_buf_init(&b, URL_MAX - 1);
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    enum ax_err rc = ax_buf_append(&b, base, bl);
    if (!rc)
        rc = ax_buf_putc(&b, '/');
    if (!rc && mid)
        rc = ax_buf_puts(&b, mid);
    if (!rc)
        rc = url_path(&b, repo);
    if (!rc && path) {
        rc = ax_buf_puts(&b, "/resolve/main/");
        if (!rc)
            rc = url_path(&b, path);
    }
    if (!rc && tail)
        rc = ax_buf_puts(&b, tail);
    if (!rc)
        memcpy(out, b.data, b.len + 1);
    ax_buf_free(&b);
    return rc ? ax_fail(err, rc, "URL too long for %s", path ? path : repo) : AX_OK;
}

/* ---- HTTP ------------------------------------------------------------------ */

struct sink {
    struct ax_buf *mem; /* listing, or */
    FILE *f;            /* download target */
    int64_t start;      /* bytes already in f when the request began */
    int64_t got;        /* bytes written by this request */
    CURL *c;
    int restarted; /* server ignored Range: file truncated */
    int failed;
    const struct hub_file *hf; /* progress lines for big files, or NULL */
    FILE *log;
    int tenth; /* last 10% step reported */
};

/* Big files take minutes: say every 10% how far we are. */
static void progress(struct sink *s)
{
    if (!s->hf || !s->log || s->hf->size < ((int64_t)64 << 20))
        return;
    int64_t done = s->start + s->got;
    int tenth = (int)(done * 10 / s->hf->size);
    if (tenth > s->tenth && tenth < 10) {
        s->tenth = tenth;
        fprintf(s->log, "  %s: %d%% (%lld MB)\n", s->hf->path, tenth * 10, (long long)(done >> 20));
        fflush(s->log);
    }
}

static size_t on_data(char *p, size_t sz, size_t n, void *user)
{
    struct sink *s = user;
    size_t len = sz * n;
    if (s->mem)
        return ax_buf_append(s->mem, p, len) == AX_OK ? len : 0;
    if (s->got == 0 && s->start > 0 && !s->restarted) {
        long code = 0;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200) { /* full body despite Range: start over */
            if (fflush(s->f) != 0 || ftruncate(fileno(s->f), 0) != 0 ||
                fseek(s->f, 0, SEEK_SET) != 0)
                return 0;
            s->restarted = 1;
            s->start = 0;
        }
    }
    if (fwrite(p, 1, len, s->f) != len) {
        s->failed = 1;
        return 0;
    }
    s->got += (int64_t)len;
    progress(s);
    return len;
}

static CURL *new_handle(const struct hub_opts *o, struct curl_slist **hdrs)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    *hdrs = NULL;
    if (o->token && *o->token) {
        char h[4096];
        snprintf(h, sizeof h, "Authorization: Bearer %s", o->token);
        *hdrs = curl_slist_append(NULL, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    curl_easy_setopt(c, CURLOPT_USERAGENT, "axserve");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer is an error after a minute, never a hang. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    return c;
}

static enum ax_err http_status(long code, const char *what, const char *repo, char *err)
{
    if (code == 404)
        return ax_fail(err, AX_ENOTFOUND,
                       "%s: not found (404): check the repository name '%s'; a private or "
                       "gated repo needs HF_TOKEN",
                       what, repo);
    if (code == 401 || code == 403)
        return ax_fail(err, AX_EIO,
                       "%s: access denied (%ld): set HF_TOKEN to a token that can read '%s'", what,
                       code, repo);
    return ax_fail(err, AX_EIO, "%s: HTTP status %ld", what, code);
}

/* ---- listing --------------------------------------------------------------- */

static int wanted(const struct hub_opts *o, const char *path)
{
    if (!o->n_include)
        return 1;
    for (int i = 0; i < o->n_include; i++)
        if (fnmatch(o->include[i], path, 0) == 0)
            return 1;
    return 0;
}

static int64_t listed_size(const json_t *sib)
{
    const json_t *s = json_object_get(sib, "size");
    if (!json_is_integer(s))
        s = json_object_get(json_object_get(sib, "lfs"), "size");
    if (json_is_integer(s) && json_integer_value(s) >= 0)
        return (int64_t)json_integer_value(s);
    return -1;
}

static void listed_sha(const json_t *sib, char out[65])
{
    const json_t *h = json_object_get(json_object_get(sib, "lfs"), "sha256");
    out[0] = '\0';
    if (!json_is_string(h) || json_string_length(h) != 64)
        return;
    const char *s = json_string_value(h);
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return;
    memcpy(out, s, 65);
}

static enum ax_err parse_listing(const struct hub_opts *o, const char *text, size_t len,
                                 struct hub_file **out, size_t *n, char *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    const json_t *sib = json_object_get(root, "siblings");
    enum ax_err rc = AX_OK;
    *out = NULL;
    *n = 0;
    if (!json_is_array(sib) || json_array_size(sib) > MAX_FILES) {
        json_decref(root);
        return ax_fail(err, AX_EFORMAT, "%s: the hub's file listing has no \"siblings\" list",
                       o->repo);
    }
    *out = ax_calloc(json_array_size(sib) + 1, sizeof **out);
    if (!*out) {
        json_decref(root);
        return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    for (size_t i = 0; rc == AX_OK && i < json_array_size(sib); i++) {
        const json_t *e = json_array_get(sib, i);
        const json_t *name = json_object_get(e, "rfilename");
        if (!json_is_string(name) || !hub_safe_path(json_string_value(name))) {
            rc = ax_fail(err, AX_EFORMAT, "%s: listing entry %zu has an unsafe or missing name",
                         o->repo, i);
            break;
        }
        if (!wanted(o, json_string_value(name)))
            continue;
        struct hub_file *f = &(*out)[*n];
        if (!(f->path = ax_strdup(json_string_value(name))))
            rc = ax_fail(err, AX_ENOMEM, "out of memory");
        else {
            f->size = listed_size(e);
            listed_sha(e, f->sha);
            (*n)++;
        }
    }
    json_decref(root);
    return rc;
}

static enum ax_err fetch_listing(CURL *c, const struct hub_opts *o, struct hub_file **files,
                                 size_t *n, char *err)
{
    char url[URL_MAX];
    enum ax_err rc = make_url(url, o->base_url, o->repo, "api/models/", NULL, "?blobs=true", err);
    if (rc)
        return rc;
    struct ax_buf mem;
    ax_buf_init(&mem, MAX_LISTING);
    struct sink s = {.mem = &mem, .c = c};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_RANGE, NULL);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK)
        rc = ax_fail(err, AX_EIO, "%s: %s", url, curl_easy_strerror(cc));
    else if (code != 200)
        rc = http_status(code, url, o->repo, err);
    else
        rc = parse_listing(o, mem.data ? mem.data : "", mem.len, files, n, err);
    ax_buf_free(&mem);
    return rc;
}

/* ---- one file -------------------------------------------------------------- */

static int64_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
}

static int starts_with_lfs(const char *p)
{
    FILE *f = fopen(p, "rb");
    char b[sizeof LFS_SIG];
    size_t n = f ? fread(b, 1, sizeof LFS_SIG - 1, f) : 0;
    if (f)
        fclose(f);
    return n == sizeof LFS_SIG - 1 && !memcmp(b, LFS_SIG, n);
}

/* mkdir -p for the directories of path (below and including dir). */
static enum ax_err make_parents(const char *path, char *err)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            *s = '/';
            return ax_fail(err, AX_EIO, "%s: cannot create directory: %s", p, strerror(e));
        }
        *s = '/';
    }
    return AX_OK;
}

/* One request appending to part. Sets *done when the body is complete. */
static enum ax_err attempt(CURL *c, const char *url, const char *part, const struct hub_file *hf,
                           const struct hub_opts *o, int *done, char *err)
{
    int64_t have = file_size(part);
    if (have < 0 || (hf->size >= 0 && have > hf->size))
        have = 0;
    FILE *f = fopen(part, have ? "ab" : "wb");
    if (!f)
        return ax_fail(err, AX_EIO, "%s: cannot write: %s", part, strerror(errno));
    void *wbuf = ax_write_buffer(f); /* weights map faster when written in large pieces */
    char range[48];
    snprintf(range, sizeof range, "%lld-", (long long)have);
    struct sink s = {.f = f, .start = have, .c = c, .hf = hf, .log = o->log};
    s.tenth = hf->size > 0 ? (int)(have * 10 / hf->size) : 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_RANGE, have ? range : NULL);
    CURLcode cc = curl_easy_perform(c);
    int closed = fclose(f);
    ax_free(wbuf);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    *done = 0;
    if (s.failed || closed != 0)
        return ax_fail(err, AX_EIO, "%s: write failed (disk full?)", part);
    if (code == 416 && hf->size >= 0 && have == hf->size) {
        *done = 1; /* nothing left to fetch */
        return AX_OK;
    }
    if (code == 404 || code == 401 || code == 403)
        return http_status(code, url, o->repo, err);
    if (code == 416) { /* our partial file does not fit: start over */
        if (truncate(part, 0) != 0)
            return ax_fail(err, AX_EIO, "%s: cannot truncate", part);
        return ax_fail(err, AX_EIO, "%s: range not satisfiable, restarting", url);
    }
    if (cc != CURLE_OK)
        return ax_fail(err, AX_EIO, "%s: %s after %lld bytes", url, curl_easy_strerror(cc),
                       (long long)s.start + (long long)s.got);
    if (code != 200 && code != 206)
        return http_status(code, url, o->repo, err);
    *done = 1;
    return AX_OK;
}

static enum ax_err hash_file(const char *path, char hex[65], char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ax_fail(err, AX_EIO, "%s: cannot read", path);
    enum { CHUNK = 1 << 16 };
    uint8_t *b = ax_malloc(CHUNK);
    if (!b) {
        fclose(f);
        return ax_fail(err, AX_ENOMEM, "out of memory");
    }
    struct sha256 s;
    sha256_init(&s);
    size_t n;
    while ((n = fread(b, 1, CHUNK, f)) > 0)
        sha256_update(&s, b, n);
    int bad = ferror(f);
    fclose(f);
    ax_free(b);
    if (bad)
        return ax_fail(err, AX_EIO, "%s: read error", path);
    sha256_final_hex(&s, hex);
    return AX_OK;
}

static enum ax_err check_file(const char *part, const struct hub_file *hf, char *err)
{
    int64_t got = file_size(part);
    if (starts_with_lfs(part) && got != hf->size)
        return ax_fail(err, AX_ELFS,
                       "%s: the hub served a Git LFS pointer (%lld bytes) instead of the file "
                       "(%lld bytes listed)",
                       hf->path, (long long)got, (long long)hf->size);
    if (hf->size >= 0 && got != hf->size)
        return ax_fail(err, AX_EFORMAT, "%s: downloaded %lld bytes, the listing says %lld",
                       hf->path, (long long)got, (long long)hf->size);
    if (!hf->sha[0])
        return AX_OK;
    char hex[65];
    enum ax_err rc = hash_file(part, hex, err);
    if (rc)
        return rc;
    if (strcmp(hex, hf->sha) != 0)
        return ax_fail(err, AX_EFORMAT, "%s: sha256 %s does not match the listed %s", hf->path, hex,
                       hf->sha);
    return AX_OK;
}

static enum ax_err pull_file(CURL *c, const struct hub_opts *o, const struct hub_file *hf,
                             char *err)
{
    char dest[4096], part[4200], url[URL_MAX];
    enum ax_err rc;
    if (snprintf(dest, sizeof dest, "%s/%s", o->dir, hf->path) >= (int)sizeof dest)
        return ax_fail(err, AX_ETOOBIG, "%s: path too long", hf->path);
    snprintf(part, sizeof part, "%s.part", dest);
    int64_t cur = file_size(dest);
    if (cur >= 0 && !starts_with_lfs(dest) && (hf->size < 0 || cur == hf->size)) {
        if (o->log)
            fprintf(o->log, "  %s: present (%lld bytes)\n", hf->path, (long long)cur);
        return AX_OK;
    }
    if ((rc = make_parents(dest, err)) ||
        (rc = make_url(url, o->base_url, o->repo, NULL, hf->path, NULL, err)))
        return rc;
    int64_t resumed = file_size(part);
    int done = 0;
    for (int i = 0; i < (o->retries > 0 ? o->retries : 1) && !done; i++) {
        rc = attempt(c, url, part, hf, o, &done, err);
        if (rc == AX_ENOTFOUND || (rc && rc != AX_EIO))
            return rc;
        if (rc && o->log)
            fprintf(o->log, "  %s: %s; retrying\n", hf->path, err);
    }
    if (!done)
        return rc;
    if ((rc = check_file(part, hf, err))) {
        unlink(part); /* wrong bytes: resuming from them would not help */
        return rc;
    }
    if (rename(part, dest) != 0)
        return ax_fail(err, AX_EIO, "%s: cannot rename into place: %s", dest, strerror(errno));
    if (o->log)
        fprintf(o->log, "  %s: %lld bytes%s\n", hf->path, (long long)file_size(dest),
                resumed > 0 ? " (resumed)" : "");
    return AX_OK;
}

/* ---- whole repo ------------------------------------------------------------ */

enum ax_err hub_pull(const struct hub_opts *o, char *err)
{
    if (!hub_valid_repo(o->repo))
        return ax_fail(err, AX_EINVAL, "'%s' is not a repository name like Qwen/Qwen3-0.6B",
                       o->repo);
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST)
        return ax_fail(err, AX_EIO, "%s: cannot create: %s", o->dir, strerror(errno));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ax_fail(err, AX_EIO, "libcurl failed to initialise");
    struct curl_slist *hdrs = NULL;
    CURL *c = new_handle(o, &hdrs);
    struct hub_file *files = NULL;
    size_t n = 0;
    enum ax_err rc = c ? fetch_listing(c, o, &files, &n, err)
                       : ax_fail(err, AX_ENOMEM, "libcurl: cannot create a handle");
    if (rc == AX_OK && n == 0)
        rc = ax_fail(err, AX_ENOTFOUND, "%s: no files to download (check --include)", o->repo);
    if (rc == AX_OK && o->log)
        fprintf(o->log, "pull %s -> %s: %zu file(s)\n", o->repo, o->dir, n);
    for (size_t i = 0; rc == AX_OK && i < n; i++)
        rc = pull_file(c, o, &files[i], err);
    for (size_t i = 0; i < n; i++)
        ax_free(files[i].path);
    ax_free(files);
    curl_slist_free_all(hdrs);
    if (c)
        curl_easy_cleanup(c);
    curl_global_cleanup();
    return rc;
}
